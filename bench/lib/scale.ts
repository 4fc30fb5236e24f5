import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.js';
import { bruteForce, makeClusteredDataset } from './clustered.js';
import { makeQueries, vectorOf, type Dataset } from './dataset.js';
import { LeanCollection, type LeanMetadata, type LeanParams } from './lean-store.js';
import type { SqliteConstructor, SqliteVec } from './peers.js';
import { progress, type Log } from './progress.js';
import { sqliteVecInsert, sqliteVecOpen } from './sqlite-vec.js';
import { collectGarbage, median, percentile, ratio, round, timed } from './stats.js';

/**
 * The store at scale, every contender side by side in one run:
 *   vectorseal   one encrypted collection (l2), upserts through the public API
 *   lean         plaintext hnswlib-node: writeIndex + one msgpackr file of ids and
 *                metadata, same M, efConstruction and ef (bench/lib/lean-store.ts)
 *   sqlite-vec   SQLCipher with sqlite-vec loaded as an extension (exact k-NN scan)
 * Measured: ingest, flush, reopen, search p50/p99 with recall@10 against
 * exact brute force, filtered search at 1%, 10% and 50% (and $in at 2%),
 * bytes on disk and resident memory. Flushes of the lean side bracket
 * vectorseal's one flush; reopen and every query alternate which side goes
 * first.
 */
export interface ScaleOptions {
  count: number;
  dim: number;
  M: number;
  efConstruction: number;
  ef: number;
  k: number;
  queries: number;
  recallQueries: number;
  filteredQueries: number;
  reopenRounds: number;
  leanFlushes: number;
  sqliteQueries: number;
  sqlite?: { Database: SqliteConstructor; vec: SqliteVec };
  workDir: string;
  log: Log;
}

export interface Latency {
  p50Ms: number;
  p99Ms: number;
}

export interface FilteredRow {
  label: string;
  selectivity: number;
  vectorseal: Latency & { recall: number };
  lean: Latency & { recall: number };
  sqliteVec?: Latency & { recall: number };
  /** vectorseal's unfiltered p50 for the same queries, timed in the same loop. */
  unfilteredP50Ms: number;
  /** vectorseal filtered p50 over that unfiltered p50. */
  toUnfiltered: number | undefined;
}

export interface ScaleResult {
  records: number;
  dim: number;
  M: number;
  efConstruction: number;
  ef: number;
  k: number;
  ingest: {
    /** The upserts: every record durable (its WAL record synced) and searchable when the last one resolves. */
    vectorsealSeconds: number;
    /** The upserts and the wait for the memtable's background graph to hold every record (Collection.waitForIndex). */
    vectorsealIndexedSeconds?: number;
    leanBuildSeconds: number;
    sqliteVecSeconds?: number;
  };
  flush: {
    vectorsealSeconds: number;
    leanSeconds: number[];
    leanMedianSeconds: number;
    ratio: number | undefined;
    /** The flush's steps (CollectionStats.lastFlush): the graph build on the worker, then the writes with the graph loading beside them. */
    steps?: { graphSeconds: number; writeSeconds: number; loadSeconds: number; grownGraph?: boolean };
    /** The writes alone (graph build and load excluded) against the lean flush, which has no graph to build. */
    writeRatio?: number | undefined;
    /** Ingest plus flush on each side: durable and indexed (vectorseal builds its graph in the flush, lean during ingest). */
    toIndexed?: { vectorsealSeconds: number; leanSeconds: number; ratio: number | undefined };
  };
  bytes: { vectorseal: number; lean: number; sqliteVec?: number };
  reopen: {
    vectorsealSeconds: number[];
    leanSeconds: number[];
    vectorsealMedianSeconds: number;
    leanMedianSeconds: number;
    ratio: number | undefined;
    sqliteVecSeconds?: number;
  };
  memory: { vectorsealReopenMB: number; leanReopenMB: number; processPeakMB: number; note: string };
  search: {
    queries: number;
    vectorseal: Latency & { recall: number };
    lean: Latency & { recall: number };
    sqliteVec?: Latency & { recall: number; queries: number };
    p50Ratio: number | undefined;
    p99Ratio: number | undefined;
  };
  filtered: FilteredRow[];
}

const BATCH = 1000;
const lat = (xs: number[]): Latency => ({ p50Ms: round(percentile(xs, 50), 4), p99Ms: round(percentile(xs, 99), 4) });
const rssMB = (): number => process.memoryUsage().rss / 1e6;

function recallOf(got: string[], truth: number[], d: Dataset): number {
  const want = new Set(truth.map((i) => d.ids[i] as string));
  let hit = 0;
  for (const id of got) if (want.has(id)) hit++;
  return truth.length === 0 ? 1 : hit / truth.length;
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const { log } = o;
  const d = makeClusteredDataset(o.count, o.dim);
  const params: LeanParams = { dim: o.dim, M: o.M, efConstruction: o.efConstruction };
  const storeDir = join(o.workDir, 'store');
  const storeOptions = { dir: storeDir, keys: { provider: 'local' as const, keyDir: join(o.workDir, 'keys') }, autoFlushRecords: 0 };
  log(`scale: ${o.count} × ${o.dim} clustered float32, M=${o.M}, efConstruction=${o.efConstruction}, ef=${o.ef}, k=${o.k}`);

  // Ingest: lean builds its graph; vectorseal upserts (durable in the WAL, searchable in memory).
  let p = progress(log, '  lean hnswlib build', d.count);
  const leanBuilt = await timed(() => {
    const c = LeanCollection.empty(params);
    for (let i = 0; i < d.count; i++) {
      c.add(d.ids[i] as string, vectorOf(d, i), d.metadata[i]);
      if ((i & 255) === 0) p.tick(i);
    }
    return c;
  });
  p.end();
  const store: Store = await openStore({ ...storeOptions, create: true });
  p = progress(log, '  vectorseal upsert', d.count);
  const vsBuilt = await timed(async () => {
    const c = await store.createCollection('bench', { dim: o.dim, space: 'l2', M: o.M, efConstruction: o.efConstruction });
    for (let at = 0; at < d.count; at += BATCH) {
      const batch = [];
      for (let i = at; i < Math.min(d.count, at + BATCH); i++)
        batch.push({ id: d.ids[i] as string, vector: vectorOf(d, i), metadata: d.metadata[i] as Record<string, unknown> });
      await c.upsert(batch);
      p.tick(at + batch.length);
    }
    return c;
  });
  p.end();
  // Durable and searchable when the last upsert resolves; indexed once the memtable's background graph has caught up.
  const vsIndexed = await timed(() => vsBuilt.value.waitForIndex());
  log(
    `  ingest: lean build ${leanBuilt.seconds.toFixed(1)} s, vectorseal upserts ${vsBuilt.seconds.toFixed(1)} s ` +
      `(+ ${vsIndexed.seconds.toFixed(2)} s until the background graph caught up)`,
  );

  // Flush: lean flushes bracket vectorseal's one (a flush empties the memtable).
  const leanFlush: number[] = [];
  let leanBytes = 0;
  let leanDir = join(o.workDir, 'lean');
  // Each round writes a new directory and none is removed until every round ran: vectorseal's flush writes new
  // files into space nothing just freed, and so must the baseline. (On this machine's virtual disk, writing into
  // blocks a removal had just freed ran about 4× faster than into fresh ones: 0.3 s against 1.1 s for 328 MB.)
  const leanDirs: string[] = [];
  const flushLean = async (): Promise<void> => {
    leanDir = join(o.workDir, `lean-${leanDirs.length}`);
    leanDirs.push(leanDir);
    await fs.mkdir(leanDir, { recursive: true });
    collectGarbage();
    const t = await timed(() => leanBuilt.value.flush(leanDir));
    leanFlush.push(t.seconds);
    leanBytes = t.value;
  };
  const half = Math.max(1, Math.floor(o.leanFlushes / 2));
  for (let i = 0; i < half; i++) await flushLean();
  collectGarbage();
  const vsFlush = await timed(() => vsBuilt.value.flush());
  for (let i = half; i < Math.max(half + 1, o.leanFlushes); i++) await flushLean();
  // The last round's files are the ones reopened below.
  for (const dir of leanDirs) if (dir !== leanDir) await fs.rm(dir, { recursive: true, force: true });
  const vsBytes = vsBuilt.value.stats().segmentBytes;
  const steps = vsBuilt.value.stats().lastFlush;
  log(
    `  flush: vectorseal ${vsFlush.seconds.toFixed(3)} s (${JSON.stringify(vsBuilt.value.stats().lastFlush ?? {})}), ` +
      `lean ${leanFlush.map((s) => s.toFixed(3)).join(', ')} s`,
  );
  await store.close({ flush: false });

  let sqliteIngest: { seconds: number; fileBytes: number; key: Buffer } | undefined;
  const sqliteFile = join(o.workDir, 'sqlite-vec.db');
  if (o.sqlite) {
    collectGarbage();
    sqliteIngest = await sqliteVecInsert(o.sqlite.Database, o.sqlite.vec, sqliteFile, d, log);
    log(`  sqlcipher + sqlite-vec insert: ${sqliteIngest.seconds.toFixed(2)} s`);
  }

  // Reopen, alternating; a vectorseal reopen includes the collection's first search (its data loads on first use).
  const q0 = makeQueries(d, 1, 99)[0] as Float32Array;
  const vsOpen: number[] = [];
  const leanOpen: number[] = [];
  const vsMem: number[] = [];
  const leanMem: number[] = [];
  let vsStore: Store | undefined;
  let lean: LeanCollection | undefined;
  for (let r = 0; r < o.reopenRounds; r++) {
    const vsStep = async (): Promise<void> => {
      await vsStore?.close({ flush: false });
      vsStore = undefined;
      collectGarbage();
      const before = rssMB();
      const t = await timed(async () => {
        const s = await openStore(storeOptions);
        s.collection('bench').search(q0, o.k);
        return s;
      });
      vsStore = t.value;
      vsOpen.push(t.seconds);
      vsMem.push(rssMB() - before);
    };
    const leanStep = async (): Promise<void> => {
      lean = undefined;
      collectGarbage();
      const before = rssMB();
      const t = await timed(() => LeanCollection.open(leanDir, params));
      lean = t.value;
      leanOpen.push(t.seconds);
      leanMem.push(rssMB() - before);
    };
    if (r % 2 === 0) {
      await vsStep();
      await leanStep();
    } else {
      await leanStep();
      await vsStep();
    }
    log(`  reopen round ${r + 1}: vectorseal ${(vsOpen.at(-1) as number).toFixed(3)} s, lean ${(leanOpen.at(-1) as number).toFixed(3)} s`);
  }
  const c = (vsStore as Store).collection('bench');
  const l = lean as LeanCollection;
  if (c.count !== d.count || l.ids.length !== d.count) throw new Error('scale: a reopened side lost records; refusing to report');
  for (const i of [0, d.count >> 1, d.count - 1]) {
    const rec = c.get(d.ids[i] as string);
    const v = vectorOf(d, i);
    if (
      !rec ||
      !Buffer.from(rec.vector.buffer, rec.vector.byteOffset, rec.vector.byteLength).equals(
        Buffer.from(v.buffer, v.byteOffset, v.byteLength),
      )
    ) {
      throw new Error(`scale: vectorseal record ${i} reads back wrong; refusing to report`);
    }
  }

  // Unfiltered search, query by query in alternation; recall on the first recallQueries.
  const queries = makeQueries(d, o.queries);
  const vsT: number[] = [];
  const leanT: number[] = [];
  let vsRecall = 0;
  let leanRecall = 0;
  const nRecall = Math.min(o.recallQueries, queries.length);
  for (let i = 0; i < Math.min(50, queries.length); i++) {
    c.search(queries[i] as Float32Array, o.k, { ef: o.ef });
    l.search(queries[i] as Float32Array, o.k, o.ef);
  }
  p = progress(log, '  search', queries.length);
  for (let i = 0; i < queries.length; i++) {
    const q = queries[i] as Float32Array;
    let a: string[] = [];
    let b: string[] = [];
    const runVs = (): void => {
      const t0 = process.hrtime.bigint();
      a = c.search(q, o.k, { ef: o.ef }).map((h) => h.id);
      vsT.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    const runLean = (): void => {
      const t0 = process.hrtime.bigint();
      b = l.search(q, o.k, o.ef).map((h) => h.id);
      leanT.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    if (i % 2 === 0) {
      runVs();
      runLean();
    } else {
      runLean();
      runVs();
    }
    if (i < nRecall) {
      const truth = bruteForce(d, q, o.k);
      vsRecall += recallOf(a, truth, d);
      leanRecall += recallOf(b, truth, d);
    }
    if ((i & 63) === 0) p.tick(i);
  }
  p.end();

  let sqliteSearch: ScaleResult['search']['sqliteVec'];
  let sqliteOpenSeconds: number | undefined;
  const sq =
    o.sqlite && sqliteIngest
      ? await timed(() =>
          sqliteVecOpen(
            (o.sqlite as { Database: SqliteConstructor }).Database,
            (o.sqlite as { vec: SqliteVec }).vec,
            sqliteFile,
            (sqliteIngest as { key: Buffer }).key,
          ),
        )
      : undefined;
  if (sq) {
    sqliteOpenSeconds = sq.seconds;
    const t: number[] = [];
    let rc = 0;
    const n = Math.min(o.sqliteQueries, queries.length);
    for (let i = 0; i < n; i++) {
      const q = queries[i] as Float32Array;
      const t0 = process.hrtime.bigint();
      const ids = sq.value.search(q, o.k);
      t.push(Number(process.hrtime.bigint() - t0) / 1e6);
      rc += recallOf(ids, bruteForce(d, q, o.k), d);
    }
    sqliteSearch = { ...lat(t), recall: round(rc / n, 4), queries: n };
  }

  // Filtered search: vectorseal's filter, the lean side's hnswlib filter callback, sqlite-vec's metadata column.
  const cases: { label: string; selectivity: number; column: 's1' | 's10' | 's50'; mod: number; values: (i: number) => number[] }[] = [
    { label: '1% (s1 = v)', selectivity: 0.01, column: 's1', mod: 100, values: (i) => [i % 100] },
    { label: '2% (s1 $in [v, v+1])', selectivity: 0.02, column: 's1', mod: 100, values: (i) => [i % 100, (i + 1) % 100] },
    { label: '10% (s10 = v)', selectivity: 0.1, column: 's10', mod: 10, values: (i) => [i % 10] },
    { label: '50% (s50 = v)', selectivity: 0.5, column: 's50', mod: 2, values: (i) => [i % 2] },
  ];
  const filtered: FilteredRow[] = [];
  for (const fc of cases) {
    const fq = makeQueries(d, o.filteredQueries, 23);
    const filterOf = (i: number): { values: number[]; filter: Record<string, unknown> } => {
      const values = fc.values(i);
      return { values, filter: values.length === 1 ? { [fc.column]: values[0] } : { [fc.column]: { $in: values } } };
    };
    // Exact answers first, outside the timed loop: a brute-force pass streams the whole data set through the
    // caches, and the next query timed after it would pay for that rather than for its own work.
    const truths = fq.map((q, i) => {
      const set = new Set(filterOf(i).values);
      return bruteForce(d, q, o.k, (j) => set.has((d.metadata[j] as Record<string, number>)[fc.column] as number));
    });
    const a: number[] = [];
    const b: number[] = [];
    /** vectorseal unfiltered, the same query in the same loop: the denominator of toUnfiltered, under the same conditions. */
    const u: number[] = [];
    const s: number[] = [];
    let ra = 0;
    let rb = 0;
    let rs = 0;
    let ns = 0;
    fq.forEach((q, i) => {
      const { values, filter } = filterOf(i);
      const set = new Set(values);
      const accept = (m: LeanMetadata | undefined): boolean => set.has(m?.[fc.column] as number);
      let ga: string[] = [];
      let gb: string[] = [];
      const runVs = (): void => {
        const t0 = process.hrtime.bigint();
        ga = c.search(q, o.k, { ef: o.ef, filter }).map((h) => h.id);
        a.push(Number(process.hrtime.bigint() - t0) / 1e6);
      };
      const runLean = (): void => {
        const t0 = process.hrtime.bigint();
        gb = l.search(q, o.k, o.ef, accept).map((h) => h.id);
        b.push(Number(process.hrtime.bigint() - t0) / 1e6);
      };
      const runVsUnfiltered = (): void => {
        const t0 = process.hrtime.bigint();
        c.search(q, o.k, { ef: o.ef });
        u.push(Number(process.hrtime.bigint() - t0) / 1e6);
      };
      // The three in rotating order, so none always runs first (coldest) or after the same neighbour.
      const order = [runVs, runVsUnfiltered, runLean];
      for (let j = 0; j < 3; j++) (order[(i + j) % 3] as () => void)();
      const truth = truths[i] as number[];
      ra += recallOf(ga, truth, d);
      rb += recallOf(gb, truth, d);
    });
    // sqlite-vec's scans take a second each: timed after the loop, so they never sit between the others.
    if (sq) {
      fq.forEach((q, i) => {
        const { values } = filterOf(i);
        if (values.length !== 1 || i >= o.sqliteQueries) return;
        const t0 = process.hrtime.bigint();
        const ids = sq.value.search(q, o.k, { column: fc.column, value: values[0] as number });
        s.push(Number(process.hrtime.bigint() - t0) / 1e6);
        rs += recallOf(ids, truths[i] as number[], d);
        ns++;
      });
    }
    const row: FilteredRow = {
      label: fc.label,
      selectivity: fc.selectivity,
      vectorseal: { ...lat(a), recall: round(ra / fq.length, 4) },
      lean: { ...lat(b), recall: round(rb / fq.length, 4) },
      ...(ns > 0 ? { sqliteVec: { ...lat(s), recall: round(rs / ns, 4) } } : {}),
      unfilteredP50Ms: round(percentile(u, 50), 4),
      toUnfiltered: ratio(percentile(a, 50), percentile(u, 50)),
    };
    filtered.push(row);
    log(
      `  filtered ${fc.label}: vectorseal p50 ${row.vectorseal.p50Ms} ms recall ${row.vectorseal.recall} ` +
        `(unfiltered beside it ${row.unfilteredP50Ms} ms); lean p50 ${row.lean.p50Ms} ms recall ${row.lean.recall}` +
        `${row.sqliteVec ? `; sqlite-vec p50 ${row.sqliteVec.p50Ms} ms` : ''}`,
    );
  }
  sq?.value.close();
  const processPeakMB = round(process.resourceUsage().maxRSS / 1e3, 0);
  await vsStore?.close({ flush: false });
  sqliteIngest?.key.fill(0);
  await fs.rm(sqliteFile, { force: true });
  await fs.rm(`${sqliteFile}-wal`, { force: true });

  const result: ScaleResult = {
    records: o.count,
    dim: o.dim,
    M: o.M,
    efConstruction: o.efConstruction,
    ef: o.ef,
    k: o.k,
    ingest: {
      vectorsealSeconds: round(vsBuilt.seconds, 2),
      vectorsealIndexedSeconds: round(vsBuilt.seconds + vsIndexed.seconds, 2),
      leanBuildSeconds: round(leanBuilt.seconds, 2),
      ...(sqliteIngest ? { sqliteVecSeconds: round(sqliteIngest.seconds, 2) } : {}),
    },
    flush: {
      vectorsealSeconds: round(vsFlush.seconds, 3),
      leanSeconds: leanFlush.map((s) => round(s, 3)),
      leanMedianSeconds: round(median(leanFlush), 3),
      ratio: ratio(vsFlush.seconds, median(leanFlush)),
      ...(steps
        ? {
            steps: {
              graphSeconds: round(steps.graphSeconds, 3),
              writeSeconds: round(steps.writeSeconds, 3),
              loadSeconds: round(steps.loadSeconds, 3),
              grownGraph: steps.grownGraph === true,
            },
            writeRatio: ratio(steps.writeSeconds, median(leanFlush)),
          }
        : {}),
      toIndexed: {
        vectorsealSeconds: round(vsBuilt.seconds + vsIndexed.seconds + vsFlush.seconds, 2),
        leanSeconds: round(leanBuilt.seconds + median(leanFlush), 2),
        ratio: ratio(vsBuilt.seconds + vsIndexed.seconds + vsFlush.seconds, leanBuilt.seconds + median(leanFlush)),
      },
    },
    bytes: { vectorseal: vsBytes, lean: leanBytes, ...(sqliteIngest ? { sqliteVec: sqliteIngest.fileBytes } : {}) },
    reopen: {
      vectorsealSeconds: vsOpen.map((s) => round(s, 3)),
      leanSeconds: leanOpen.map((s) => round(s, 3)),
      vectorsealMedianSeconds: round(median(vsOpen), 3),
      leanMedianSeconds: round(median(leanOpen), 3),
      ratio: ratio(median(vsOpen), median(leanOpen)),
      ...(sqliteOpenSeconds === undefined ? {} : { sqliteVecSeconds: round(sqliteOpenSeconds, 4) }),
    },
    memory: {
      vectorsealReopenMB: round(median(vsMem), 0),
      leanReopenMB: round(median(leanMem), 0),
      processPeakMB,
      note:
        'resident-set growth across one reopen (median of the rounds; ' +
        'the earlier copy released and garbage-collected first); the peak is the whole benchmark process',
    },
    search: {
      queries: queries.length,
      vectorseal: { ...lat(vsT), recall: round(vsRecall / nRecall, 4) },
      lean: { ...lat(leanT), recall: round(leanRecall / nRecall, 4) },
      ...(sqliteSearch ? { sqliteVec: sqliteSearch } : {}),
      p50Ratio: ratio(percentile(vsT, 50), percentile(leanT, 50), 3),
      p99Ratio: ratio(percentile(vsT, 99), percentile(leanT, 99), 3),
    },
    filtered,
  };
  return result;
}
