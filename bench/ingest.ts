import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { openStore } from '../src/index.js';
import { makeDataset, makeQueries, vectorOf, type Dataset } from './lib/dataset.js';
import { resultsDir } from './lib/paths.js';
import { median, percentile, ratio, round } from './lib/stats.js';

/*
 * Ingest benchmark for issue 13 items 2 and 3 (background graph builds and
 * background compaction), separate from `npm run bench`. Every ratio pairs
 * the contenders in one run on the same data:
 *   1. ingest to durable and searchable of N × 768 vs a single-threaded
 *      plaintext hnswlib-node build with the same M and efConstruction
 *      (goal <= 0.7x), and until every record is in a graph (reported too);
 *   2. flush p99 vs median over a long ingest of many flushes (goal <= 3x);
 *   3. search p50 at the steady-state group count vs the same records in
 *      one group (goal <= 1.3x).
 * Sizes come from the environment (INGEST_N, FLUSHES, FLUSH_SIZE) so a run stays bounded.
 */

const M = 16;
const EF_CONSTRUCTION = 200;
const DIM = 768;
const N = Number(process.env['INGEST_N'] ?? 20_000);
const FLUSHES = Number(process.env['FLUSHES'] ?? 40);
const FLUSH_SIZE = Number(process.env['FLUSH_SIZE'] ?? 1_000);
const FLUSH_DIM = 128;
const BATCH = 1_000;

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

function plainBuild(d: Dataset): number {
  const t0 = now();
  const index = new hnswlib.HierarchicalNSW('l2', d.dim);
  index.initIndex({ maxElements: d.count, m: M, efConstruction: EF_CONSTRUCTION, randomSeed: 100 });
  for (let i = 0; i < d.count; i++) index.addPoint(Array.from(vectorOf(d, i)), i);
  return now() - t0;
}

async function openBenchStore(root: string, extra: Record<string, unknown>) {
  return openStore({ dir: join(root, 'data'), create: true, keys: { provider: 'local', keyDir: join(root, 'keys') }, ...extra });
}

async function ingest(d: Dataset, root: string): Promise<{ durable: number; indexed: number; searchOk: boolean }> {
  const store = await openBenchStore(root, { autoFlushRecords: Math.ceil(d.count / 2) });
  const col = await store.createCollection('c', { dim: d.dim, M, efConstruction: EF_CONSTRUCTION });
  const t0 = now();
  for (let i = 0; i < d.count; i += BATCH) {
    const batch: { id: string; vector: Float32Array; metadata: Record<string, unknown> }[] = [];
    for (let j = i; j < Math.min(d.count, i + BATCH); j++)
      batch.push({ id: d.ids[j] as string, vector: vectorOf(d, j), metadata: d.metadata[j] ?? {} });
    await col.upsert(batch);
  }
  const durable = now() - t0;
  // Searchable at once (checked outside the timing): the last record is its own nearest neighbour.
  const searchOk = col.search(vectorOf(d, d.count - 1), 1)[0]?.id === d.ids[d.count - 1];
  await col.whenIdle();
  await col.flush();
  await col.whenIdle();
  const indexed = now() - t0;
  await store.close();
  return { durable, indexed, searchOk };
}

async function flushSeries(
  root: string,
): Promise<{ flushes: number[]; groups: number; searchSteady: number; searchOneGroup: number; records: number }> {
  const d = makeDataset(FLUSHES * FLUSH_SIZE, FLUSH_DIM, 21);
  const store = await openBenchStore(root, { autoFlushRecords: 0 });
  const col = await store.createCollection('f', { dim: FLUSH_DIM, M, efConstruction: EF_CONSTRUCTION });
  const flushes: number[] = [];
  for (let f = 0; f < FLUSHES; f++) {
    const batch = [];
    for (let j = f * FLUSH_SIZE; j < (f + 1) * FLUSH_SIZE; j++) batch.push({ id: d.ids[j] as string, vector: vectorOf(d, j) });
    await col.upsert(batch);
    const t0 = now();
    await col.flush();
    flushes.push(now() - t0);
  }
  await col.whenIdle();
  const groups = col.stats().segments;
  const queries = makeQueries(d, 300);
  const p50 = (): number => {
    const times: number[] = [];
    for (const q of queries) {
      const t0 = now();
      col.search(q, 10);
      times.push(now() - t0);
    }
    return median(times);
  };
  // Paired on the same records: the steady-state layout, then one group, then the first again (interleaved halves).
  p50();
  const a = p50();
  await col.compact();
  const b = p50();
  await store.close();
  return { flushes, groups, searchSteady: a, searchOneGroup: b, records: d.count };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'i13-ingest-'));
  try {
    const d = makeDataset(N, DIM);
    const plain = plainBuild(d);
    const ours = await ingest(d, join(root, 'ingest'));
    const series = await flushSeries(join(root, 'flush'));
    const flushMedian = median(series.flushes);
    const flushP99 = percentile(series.flushes, 99);
    const result = {
      machine: { cpus: cpus().length, node: process.version },
      params: { M, efConstruction: EF_CONSTRUCTION, dim: DIM, records: N, batch: BATCH },
      ingest: {
        plainBuildSeconds: round(plain, 3),
        durableSearchableSeconds: round(ours.durable, 3),
        allIndexedSeconds: round(ours.indexed, 3),
        durableVsPlain: ratio(ours.durable, plain),
        indexedVsPlain: ratio(ours.indexed, plain),
        searchableAtOnce: ours.searchOk,
        goal: 'durable and searchable <= 0.7x plain build',
        met: ours.durable <= 0.7 * plain,
        sqlcipher: 'not run: bench/node_modules (better-sqlite3-multiple-ciphers) is not installed in this worktree',
      },
      flush: {
        records: series.records,
        dim: FLUSH_DIM,
        flushes: series.flushes.length,
        medianSeconds: round(flushMedian, 4),
        p99Seconds: round(flushP99, 4),
        p99VsMedian: ratio(flushP99, flushMedian),
        goal: 'p99 <= 3x median',
        met: flushP99 <= 3 * flushMedian,
      },
      search: {
        steadyStateGroups: series.groups,
        p50SteadyMs: round(series.searchSteady * 1e3, 3),
        p50OneGroupMs: round(series.searchOneGroup * 1e3, 3),
        steadyVsOneGroup: ratio(series.searchSteady, series.searchOneGroup),
        goal: 'steady-state p50 <= 1.3x one group',
        met: series.searchSteady <= 1.3 * series.searchOneGroup,
      },
    };
    const dir = resultsDir();
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(join(dir, 'ingest.json'), `${JSON.stringify(result, null, 2)}\n`);
    const mark = (met: boolean): string => (met ? 'met' : '**missed**');
    const md = [
      '# Ingest, flush and compaction (bench/ingest.ts)',
      '',
      `Machine: ${result.machine.cpus} cores, Node ${result.machine.node}. M ${M}, efConstruction ${EF_CONSTRUCTION}.`,
      '',
      '| measure | vectorseal | baseline | ratio | goal |',
      '|---|---|---|---|---|',
      `| ingest ${N} × ${DIM} to durable + searchable | ${result.ingest.durableSearchableSeconds} s | ` +
        `plain hnswlib build ${result.ingest.plainBuildSeconds} s | ${result.ingest.durableVsPlain}× | ≤ ` +
        `0.7×: ${mark(result.ingest.met)} |`,
      `| same, until every record is in a graph | ${result.ingest.allIndexedSeconds} s | plain hnswlib ` +
        `build | ${result.ingest.indexedVsPlain}× | (reported) |`,
      `| flush p99 over ${series.flushes.length} flushes of ${FLUSH_SIZE} × ${FLUSH_DIM} (${series.records}` +
        ` records) | ${result.flush.p99Seconds} s | median ${result.flush.medianSeconds} s | ` +
        `${result.flush.p99VsMedian}× | ≤ 3×: ${mark(result.flush.met)} |`,
      `| search p50 at steady state (${series.groups} groups) | ${result.search.p50SteadyMs} ms | one ` +
        `group ${result.search.p50OneGroupMs} ms | ${result.search.steadyVsOneGroup}× | ≤ 1.3×: ` +
        `${mark(result.search.met)} |`,
      '',
      `SQLCipher + sqlite-vec: ${result.ingest.sqlcipher}.`,
      '',
    ].join('\n');
    await fs.writeFile(join(dir, 'ingest.md'), md);
    process.stdout.write(md);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
