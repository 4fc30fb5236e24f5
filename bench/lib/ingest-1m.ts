import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { bruteForce, makeClusteredDataset } from './clustered.js';
import { makeQueries, vectorOf, type Dataset } from './dataset.js';
import type { Log } from './progress.js';
import { median, percentile, ratio, round } from './stats.js';

/**
 * Two goals of background compaction, on one large ingest (`--only ingest1m`):
 *
 * - flush p99 over a 1,000,000-record ingest within 3× the median flush: the
 *   records go in through the public API in batches, with the store's
 *   background compaction on (its default maxSegments), and the collection
 *   is flushed each time its unflushed records reach the store's normal
 *   automatic-flush threshold (100,000); each flush is timed on its own (the
 *   ingest waits for it, so no write competes with the timing);
 * - search p50 at the steady-state number of segment groups within 1.3× a
 *   single-group collection: once the background compaction has settled, the
 *   store is copied, the copy's collection compacted into one group, and
 *   the same queries run on both, alternated query by query (the order
 *   swapped every query), with recall@10 against exact brute force for both.
 *
 * Dimension 64 keeps a million records' graphs buildable in bounded time and
 * memory on two cores; M, efConstruction and ef are the store's defaults.
 */

export interface Ingest1mOptions {
  count: number;
  dim: number;
  batch: number;
  flushEvery: number;
  queries: number;
  recallQueries: number;
  k: number;
  workDir: string;
  log: Log;
}

export interface Ingest1mResult {
  records: number;
  dim: number;
  batch: number;
  flushEvery: number;
  maxSegments: number;
  ingestSeconds: number;
  recordsPerSecond: number;
  /** Wall clock of each flush, in order. */
  flushSeconds: number[];
  flush: { median: number; p99: number; max: number; p99ToMedian: number | undefined };
  /** Seconds from the end of the ingest until the background compaction had settled. */
  settleSeconds: number;
  steadyGroups: number;
  /** The copy's full compaction into one group. */
  compactSeconds: number;
  search: {
    queries: number;
    k: number;
    steady: { p50Ms: number; p99Ms: number; recall: number };
    single: { p50Ms: number; p99Ms: number; recall: number };
    p50Ratio: number | undefined;
  };
  loadAverage: { start: number[]; end: number[] };
}

const STORE_MAX_SEGMENTS = 8;

function recallOf(got: string[], truth: number[], d: Dataset): number {
  const want = new Set(truth.map((i) => d.ids[i] as string));
  let hit = 0;
  for (const id of got) if (want.has(id)) hit++;
  return truth.length === 0 ? 1 : hit / truth.length;
}

const loadNow = async (): Promise<number[]> => (await import('node:os')).loadavg().map((x) => round(x, 2));

/** Runs the section (see above). */
export async function runIngest1m(o: Ingest1mOptions): Promise<Ingest1mResult> {
  const { log } = o;
  const start = await loadNow();
  log(`ingest1m: generating ${o.count.toLocaleString('en-US')} × ${o.dim} clustered records`);
  const d = makeClusteredDataset(o.count, o.dim);
  const keyDir = join(o.workDir, 'keys');
  const dirA = join(o.workDir, 'steady');
  const dirB = join(o.workDir, 'single');
  await fs.rm(o.workDir, { recursive: true, force: true });
  await fs.mkdir(o.workDir, { recursive: true });

  const store = await openStore({ dir: dirA, create: true, keys: { provider: 'local', keyDir }, autoFlushRecords: 0 });
  const c = await store.createCollection('c', { dim: o.dim });
  const flushSeconds: number[] = [];
  const t0 = process.hrtime.bigint();
  let lastLog = Date.now();
  let unflushed = 0;
  for (let at = 0; at < o.count; at += o.batch) {
    const end = Math.min(o.count, at + o.batch);
    const batch = [];
    for (let i = at; i < end; i++)
      batch.push({ id: d.ids[i] as string, vector: vectorOf(d, i), metadata: d.metadata[i] as Record<string, unknown> });
    await c.upsert(batch);
    unflushed += end - at;
    if (unflushed >= o.flushEvery) {
      const f0 = process.hrtime.bigint();
      await c.flush();
      flushSeconds.push(Number(process.hrtime.bigint() - f0) / 1e9);
      unflushed = 0;
      log(`ingest1m: flush ${flushSeconds.length} took ${round(flushSeconds.at(-1) as number, 2)} s; groups ${c.stats().segments}`);
    }
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const rate = end / s;
      log(
        `ingest1m: ${end.toLocaleString('en-US')}/${o.count.toLocaleString('en-US')} ` +
          `(${Math.round(rate)}/s, ETA ${Math.round((o.count - end) / rate)} s)`,
      );
    }
  }
  if (unflushed > 0) {
    const f0 = process.hrtime.bigint();
    await c.flush();
    flushSeconds.push(Number(process.hrtime.bigint() - f0) / 1e9);
  }
  const ingestSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  log(`ingest1m: ingested in ${round(ingestSeconds, 1)} s; waiting for the background compaction to settle`);
  const s0 = process.hrtime.bigint();
  await c.whenIdle();
  const settleSeconds = Number(process.hrtime.bigint() - s0) / 1e9;
  const steadyGroups = c.stats().segments;
  log(`ingest1m: settled in ${round(settleSeconds, 1)} s at ${steadyGroups} group(s)`);
  await store.close();

  // The same records, compacted into one group: a copy of the settled store.
  await fs.cp(dirA, dirB, { recursive: true });
  const steadyStore = await openStore({ dir: dirA, keys: { provider: 'local', keyDir } });
  const singleStore = await openStore({ dir: dirB, keys: { provider: 'local', keyDir } });
  try {
    const steady = steadyStore.collection('c');
    const single = singleStore.collection('c');
    const c0 = process.hrtime.bigint();
    await single.compact();
    const compactSeconds = Number(process.hrtime.bigint() - c0) / 1e9;
    log(`ingest1m: copy compacted to ${single.stats().segments} group in ${round(compactSeconds, 1)} s`);
    if (steady.count !== o.count || single.count !== o.count) throw new Error('ingest1m: a collection lost records');

    const queries = makeQueries(d, o.queries);
    // Warm both (first searches touch cold pages).
    for (const q of queries.slice(0, 20)) {
      steady.search(q, o.k);
      single.search(q, o.k);
    }
    const tSteady: number[] = [];
    const tSingle: number[] = [];
    const time = (fn: () => unknown, into: number[]): void => {
      const a = process.hrtime.bigint();
      fn();
      into.push(Number(process.hrtime.bigint() - a) / 1e6);
    };
    queries.forEach((q, i) => {
      if (i % 2 === 0) {
        time(() => steady.search(q, o.k), tSteady);
        time(() => single.search(q, o.k), tSingle);
      } else {
        time(() => single.search(q, o.k), tSingle);
        time(() => steady.search(q, o.k), tSteady);
      }
    });
    log(`ingest1m: recall@${o.k} over ${o.recallQueries} queries against exact brute force`);
    let rSteady = 0;
    let rSingle = 0;
    for (const q of queries.slice(0, o.recallQueries)) {
      const truth = bruteForce(d, q, o.k);
      rSteady += recallOf(
        steady.search(q, o.k).map((h) => h.id),
        truth,
        d,
      );
      rSingle += recallOf(
        single.search(q, o.k).map((h) => h.id),
        truth,
        d,
      );
    }
    const p50Steady = median(tSteady);
    const p50Single = median(tSingle);
    const med = median(flushSeconds);
    const p99 = percentile(flushSeconds, 99);
    return {
      records: o.count,
      dim: o.dim,
      batch: o.batch,
      flushEvery: o.flushEvery,
      maxSegments: STORE_MAX_SEGMENTS,
      ingestSeconds: round(ingestSeconds, 1),
      recordsPerSecond: Math.round(o.count / ingestSeconds),
      flushSeconds: flushSeconds.map((x) => round(x, 2)),
      flush: { median: round(med, 2), p99: round(p99, 2), max: round(Math.max(...flushSeconds), 2), p99ToMedian: ratio(p99, med) },
      settleSeconds: round(settleSeconds, 1),
      steadyGroups,
      compactSeconds: round(compactSeconds, 1),
      search: {
        queries: queries.length,
        k: o.k,
        steady: { p50Ms: round(p50Steady, 3), p99Ms: round(percentile(tSteady, 99), 3), recall: round(rSteady / o.recallQueries, 4) },
        single: { p50Ms: round(p50Single, 3), p99Ms: round(percentile(tSingle, 99), 3), recall: round(rSingle / o.recallQueries, 4) },
        p50Ratio: ratio(p50Steady, p50Single),
      },
      loadAverage: { start, end: await loadNow() },
    };
  } finally {
    await steadyStore.close({ flush: false });
    await singleStore.close({ flush: false });
    await fs.rm(o.workDir, { recursive: true, force: true });
  }
}

/** The goals this section measures, as the summary lists them. */
export function ingest1mGoals(r: Ingest1mResult): { goal: string; measured: string; met: boolean | undefined }[] {
  const n = `${r.records.toLocaleString('en-US')} × ${r.dim}`;
  return [
    {
      goal: `flush p99 ≤ 3× the median flush over a ${n} ingest (background compaction on)`,
      measured:
        `${r.flush.p99ToMedian ?? 'n/a'}× (p99 ${r.flush.p99} s, median ${r.flush.median} s, max ${r.flush.max} s over ` +
        `${r.flushSeconds.length} flushes)`,
      met: r.flush.p99ToMedian === undefined ? undefined : r.flush.p99ToMedian <= 3,
    },
    {
      goal: 'search p50 at the steady-state number of groups ≤ 1.3× a single-group collection',
      measured:
        `${r.search.p50Ratio ?? 'n/a'}× (${r.steadyGroups} groups ${r.search.steady.p50Ms} ms, recall@${r.search.k} ` +
        `${r.search.steady.recall}; one group ${r.search.single.p50Ms} ms, recall ${r.search.single.recall})`,
      met: r.search.p50Ratio === undefined ? undefined : r.search.p50Ratio <= 1.3,
    },
  ];
}

/** The section's Markdown for latest.md. */
export function renderIngest1m(r: Ingest1mResult): string[] {
  return [
    '',
    `## Ingest of ${r.records.toLocaleString('en-US')} × ${r.dim} with background compaction`,
    '',
    `Public API, batches of ${r.batch}, a flush every ${r.flushEvery.toLocaleString('en-US')} records (the store's automatic-flush ` +
      `threshold), maxSegments ${r.maxSegments}, M 16, efConstruction 200, default ef. Load average ` +
      `${r.loadAverage.start.join(' ')} at the start, ${r.loadAverage.end.join(' ')} at the end.`,
    '',
    '| | figure |',
    '|---|---|',
    `| ingest (durable, flushed) | ${r.ingestSeconds} s, ${r.recordsPerSecond.toLocaleString('en-US')} records/s |`,
    `| flush median / p99 / max | ${r.flush.median} / ${r.flush.p99} / ${r.flush.max} s (${r.flush.p99ToMedian ?? 'n/a'}× median) |`,
    `| each flush (s) | ${r.flushSeconds.join(', ')} |`,
    `| background compaction settled after the ingest | ${r.settleSeconds} s, at ${r.steadyGroups} group(s) |`,
    `| search p50 / p99, ${r.steadyGroups} groups | ${r.search.steady.p50Ms} / ${r.search.steady.p99Ms} ms, ` +
      `recall@${r.search.k} ${r.search.steady.recall} |`,
    `| search p50 / p99, one group (copy compacted in ${r.compactSeconds} s) | ${r.search.single.p50Ms} / ${r.search.single.p99Ms} ms, ` +
      `recall@${r.search.k} ${r.search.single.recall} |`,
    `| steady-state p50 / one-group p50 | ${r.search.p50Ratio ?? 'n/a'}× (${r.search.queries} queries, alternated) |`,
  ];
}
