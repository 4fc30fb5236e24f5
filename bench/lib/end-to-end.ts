import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Collection, type Store } from '../../src/store/index.js';
import { makeDataset, makeQueries, vectorOf, type Dataset } from './dataset.js';
import type { SqliteConstructor } from './peers.js';
import { PlainCollection, type PlainParams } from './plain-store.js';
import { progress, type Log } from './progress.js';
import { sqlcipherBulkInsert } from './sqlcipher.js';
import { collectGarbage, median, percentile, ratio, round, timed } from './stats.js';

/**
 * End to end: one collection of `count` × `dim` float32 vectors with small
 * metadata, in vectorseal (encrypted) and in plaintext hnswlib + msgpackr,
 * and bulk-inserted into the SQLite cipher build.
 *
 * What is timed, alike on both sides, is persistence: vectorseal's
 * `collection.flush()` against the plaintext writeIndex + two msgpackr files
 * (all fsynced). Building the HNSW graph happens on both sides, the same
 * way, and is reported but not part of the ratio; vectorseal's WAL writes
 * during upsert are reported with the build. Reopen is loading everything
 * back ready to search (vectorseal: `openStore`; plaintext: readIndex and
 * both files), repeated in alternation and compared by medians. Search is
 * `collection.search` against hnswlib `searchKnn` (plus the id and metadata
 * lookup a user needs), query by query in alternation, same k and ef.
 */
export interface EndToEndOptions {
  count: number;
  dim: number;
  M: number;
  efConstruction: number;
  ef: number;
  k: number;
  queries: number;
  reopenRounds: number;
  /** Plaintext flushes; they bracket vectorseal's single flush. */
  plaintextFlushes: number;
  sqlcipherRuns: number;
  /** Absent: no SQLite cipher column. */
  sqlite?: SqliteConstructor;
  workDir: string;
  log: Log;
}

export interface EndToEndResult {
  records: number;
  dim: number;
  vectorBytes: number;
  M: number;
  efConstruction: number;
  timed: string;
  build: { vectorsealSeconds: number; plaintextSeconds: number };
  flush: {
    vectorsealSeconds: number;
    plaintextSeconds: number[];
    plaintextMedianSeconds: number;
    vectorsealFileBytes: number;
    plaintextFileBytes: number;
    /** MB of vectors (10^6 B) persisted per second. */
    vectorsealVectorMBps: number;
    plaintextVectorMBps: number;
    ratio: number | undefined;
  };
  sqlcipher?: {
    seconds: number[];
    bestSeconds: number;
    fileBytes: number;
    vectorMBps: number;
    /** vectorseal flush throughput over the SQLite cipher build's bulk insert. */
    flushRatio: number | undefined;
  };
  reopen: {
    vectorsealSeconds: number[];
    plaintextSeconds: number[];
    vectorsealMedianSeconds: number;
    plaintextMedianSeconds: number;
    ratio: number | undefined;
  };
  search: {
    queries: number;
    k: number;
    ef: number;
    vectorseal: { p50Ms: number; p99Ms: number };
    plaintext: { p50Ms: number; p99Ms: number };
    p50Ratio: number | undefined;
    p99Ratio: number | undefined;
    /**
     * Queries whose k ids came back identical, in the same order, on both
     * sides. vectorseal builds its graph on two threads, so the insertion
     * order (and with it the odd near tie) can differ from the single-threaded
     * plaintext build: this is usually, not always, every query.
     */
    identicalResults: number;
    /** Of all k × queries ids returned by the plaintext side, the fraction vectorseal returned too. */
    sharedIds?: number;
  };
}

const BATCH = 1000;

export async function runEndToEnd(o: EndToEndOptions): Promise<EndToEndResult> {
  const { log } = o;
  const d = makeDataset(o.count, o.dim);
  const params: PlainParams = { dim: o.dim, M: o.M, efConstruction: o.efConstruction };
  const storeDir = join(o.workDir, 'store');
  const keyDir = join(o.workDir, 'keys');
  // Automatic flushes off: the one flush measured must persist every record, as the plaintext side does.
  const storeOptions = { dir: storeDir, keys: { provider: 'local' as const, keyDir }, autoFlushRecords: 0 };
  log(
    `end to end: ${o.count} × ${o.dim} float32 (${((o.count * o.dim * 4) / 1e6).toFixed(0)} MB of ` +
      `vectors), M=${o.M}, efConstruction=${o.efConstruction}`,
  );

  // Build both sides (not timed in the ratios).
  const plainBuilt = await buildPlain(d, params, log);
  let store: Store | undefined = await openStore({ ...storeOptions, create: true });
  const built = await buildVectorseal(store, d, params, log);

  // Flush: plaintext writes bracket vectorseal's one flush (a flush empties the memtable, so it cannot repeat).
  const plainSeconds: number[] = [];
  let plainBytes = 0;
  const plainFlush = async (i: number): Promise<void> => {
    const dir = join(o.workDir, `plain-${i}`);
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    collectGarbage();
    const t = await timed(() => plainBuilt.collection.flush(dir));
    plainSeconds.push(t.seconds);
    plainBytes = t.value;
    log(`  plaintext flush ${i + 1}: ${t.seconds.toFixed(2)} s`);
  };
  const half = Math.max(1, Math.floor(o.plaintextFlushes / 2));
  for (let i = 0; i < half; i++) await plainFlush(i);
  collectGarbage();
  const vsFlush = await timed(() => built.collection.flush());
  log(`  vectorseal flush: ${vsFlush.seconds.toFixed(2)} s`);
  for (let i = half; i < Math.max(half + 1, o.plaintextFlushes); i++) await plainFlush(i);
  const vsBytes = built.collection.stats().segmentBytes;
  const plainFlushDir = join(o.workDir, 'plain-0');
  for (let i = 1; i < plainSeconds.length; i++) await fs.rm(join(o.workDir, `plain-${i}`), { recursive: true, force: true });
  await store.close({ flush: false });
  store = undefined;
  const vectorMB = (o.count * o.dim * 4) / 1e6;
  const plainMedian = median(plainSeconds);

  // SQLite cipher bulk insert of the same records.
  let sqlcipher: EndToEndResult['sqlcipher'];
  if (o.sqlite) {
    const runs: number[] = [];
    let fileBytes = 0;
    for (let i = 0; i < o.sqlcipherRuns; i++) {
      collectGarbage();
      const r = await sqlcipherBulkInsert(o.sqlite, join(o.workDir, 'sqlcipher.db'), d, log);
      runs.push(r.seconds);
      fileBytes = r.fileBytes;
      log(`  sqlcipher bulk insert ${i + 1}: ${r.seconds.toFixed(2)} s`);
    }
    await fs.rm(join(o.workDir, 'sqlcipher.db'), { force: true });
    const best = Math.min(...runs);
    sqlcipher = {
      seconds: runs.map((s) => round(s, 3)),
      bestSeconds: round(best, 3),
      fileBytes,
      vectorMBps: round(vectorMB / best, 1),
      // Throughput over throughput on the same records: the SQLite side gets its best run.
      flushRatio: ratio(best, vsFlush.seconds, 1),
    };
  }

  // Reopen, alternating, then verify what was loaded (outside the timing).
  const vsOpen: number[] = [];
  const plainOpen: number[] = [];
  let openStoreNow: Store | undefined;
  let plainOpened: PlainCollection | undefined;
  for (let r = 0; r < o.reopenRounds; r++) {
    const vsStep = async (): Promise<void> => {
      await openStoreNow?.close({ flush: false });
      openStoreNow = undefined;
      collectGarbage();
      const t = await timed(async () => {
        const s = await openStore(storeOptions);
        s.collection('bench');
        return s;
      });
      openStoreNow = t.value;
      vsOpen.push(t.seconds);
    };
    const plainStep = async (): Promise<void> => {
      plainOpened = undefined;
      collectGarbage();
      const t = await timed(() => PlainCollection.open(plainFlushDir, params));
      plainOpened = t.value;
      plainOpen.push(t.seconds);
    };
    if (r % 2 === 0) {
      await vsStep();
      await plainStep();
    } else {
      await plainStep();
      await vsStep();
    }
    log(
      `  reopen round ${r + 1}: vectorseal ${(vsOpen.at(-1) as number).toFixed(2)} s, ` +
        `plaintext ${(plainOpen.at(-1) as number).toFixed(2)} s`,
    );
  }
  const reopened = (openStoreNow as Store | undefined)?.collection('bench');
  if (!reopened || !plainOpened) throw new Error('end to end: nothing was reopened');
  verifyVectorseal(reopened, d);
  verifyPlain(plainOpened, d);
  log('  reopened collections verified: every record, vector and metadata');

  const search = measureSearch(reopened, plainOpened, d, o, log);
  await (openStoreNow as Store | undefined)?.close({ flush: false });

  return {
    records: o.count,
    dim: o.dim,
    vectorBytes: o.count * o.dim * 4,
    M: o.M,
    efConstruction: o.efConstruction,
    timed: 'flush = persisting index + vectors + metadata (fsynced) on both sides; HNSW build and inserts are not timed',
    build: { vectorsealSeconds: round(built.seconds, 1), plaintextSeconds: round(plainBuilt.seconds, 1) },
    flush: {
      vectorsealSeconds: round(vsFlush.seconds, 3),
      plaintextSeconds: plainSeconds.map((s) => round(s, 3)),
      plaintextMedianSeconds: round(plainMedian, 3),
      vectorsealFileBytes: vsBytes,
      plaintextFileBytes: plainBytes,
      vectorsealVectorMBps: round(vectorMB / vsFlush.seconds, 1),
      plaintextVectorMBps: round(vectorMB / plainMedian, 1),
      ratio: ratio(vsFlush.seconds, plainMedian),
    },
    ...(sqlcipher ? { sqlcipher } : {}),
    reopen: {
      vectorsealSeconds: vsOpen.map((s) => round(s, 3)),
      plaintextSeconds: plainOpen.map((s) => round(s, 3)),
      vectorsealMedianSeconds: round(median(vsOpen), 3),
      plaintextMedianSeconds: round(median(plainOpen), 3),
      ratio: ratio(median(vsOpen), median(plainOpen)),
    },
    search,
  };
}

async function buildPlain(d: Dataset, params: PlainParams, log: Log): Promise<{ collection: PlainCollection; seconds: number }> {
  const p = progress(log, '  plaintext hnswlib build', d.count);
  const t = await timed(() => {
    const c = PlainCollection.empty(params);
    for (let i = 0; i < d.count; i++) {
      c.add(d.ids[i] as string, vectorOf(d, i), d.metadata[i]);
      if ((i & 255) === 0) p.tick(i);
    }
    return c;
  });
  p.end();
  return { collection: t.value, seconds: t.seconds };
}

async function buildVectorseal(
  store: Store,
  d: Dataset,
  params: PlainParams,
  log: Log,
): Promise<{ collection: Collection; seconds: number }> {
  const p = progress(log, '  vectorseal upsert (WAL + HNSW build)', d.count);
  const t = await timed(async () => {
    const c = await store.createCollection('bench', { dim: params.dim, space: 'l2', M: params.M, efConstruction: params.efConstruction });
    for (let at = 0; at < d.count; at += BATCH) {
      const end = Math.min(d.count, at + BATCH);
      const batch = [];
      for (let i = at; i < end; i++)
        batch.push({ id: d.ids[i] as string, vector: vectorOf(d, i), metadata: d.metadata[i] as Record<string, unknown> });
      await c.upsert(batch);
      p.tick(end);
    }
    return c;
  });
  p.end();
  return { collection: t.value, seconds: t.seconds };
}

function sameVector(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function verifyVectorseal(c: Collection, d: Dataset): void {
  if (c.count !== d.count) throw new Error(`end to end: vectorseal reopened ${c.count} records, expected ${d.count}; refusing to report`);
  for (let i = 0; i < d.count; i++) {
    const r = c.get(d.ids[i] as string);
    if (!r || !sameVector(r.vector, vectorOf(d, i)) || JSON.stringify(r.metadata) !== JSON.stringify(d.metadata[i])) {
      throw new Error(`end to end: vectorseal record ${i} reads back wrong; refusing to report`);
    }
  }
}

function verifyPlain(c: PlainCollection, d: Dataset): void {
  if (c.ids.length !== d.count) throw new Error('end to end: plaintext reopened the wrong record count; refusing to report');
  for (let i = 0; i < d.count; i++) {
    const label = c.labels.get(d.ids[i] as string);
    if (
      label === undefined ||
      !sameVector(c.vectors[label] as Float32Array, vectorOf(d, i)) ||
      JSON.stringify(c.metadata[label]) !== JSON.stringify(d.metadata[i])
    ) {
      throw new Error(`end to end: plaintext record ${i} reads back wrong; refusing to report`);
    }
  }
}

function measureSearch(c: Collection, plain: PlainCollection, d: Dataset, o: EndToEndOptions, log: Log): EndToEndResult['search'] {
  const queries = makeQueries(d, o.queries);
  const vs: number[] = [];
  const pl: number[] = [];
  let identical = 0;
  let shared = 0;
  // Warm-up: caches and JIT on both sides.
  for (let i = 0; i < Math.min(50, queries.length); i++) {
    c.search(queries[i] as Float32Array, o.k, { ef: o.ef });
    plain.search(queries[i] as Float32Array, o.k, o.ef);
  }
  const p = progress(log, '  search', queries.length);
  queries.forEach((q, i) => {
    let a: { id: string }[] = [];
    let b: { id: string }[] = [];
    const runVs = (): void => {
      const t0 = process.hrtime.bigint();
      a = c.search(q, o.k, { ef: o.ef });
      vs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    const runPlain = (): void => {
      const t0 = process.hrtime.bigint();
      b = plain.search(q, o.k, o.ef);
      pl.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    if (i % 2 === 0) {
      runVs();
      runPlain();
    } else {
      runPlain();
      runVs();
    }
    if (a.length !== o.k || b.length !== o.k) throw new Error('end to end: a search returned fewer than k results; refusing to report');
    if (a.every((h, j) => h.id === b[j]?.id)) identical++;
    const mine = new Set(a.map((h) => h.id));
    for (const h of b) if (mine.has(h.id)) shared++;
    if ((i & 63) === 0) p.tick(i);
  });
  p.end();
  const vsP = { p50Ms: round(percentile(vs, 50), 4), p99Ms: round(percentile(vs, 99), 4) };
  const plP = { p50Ms: round(percentile(pl, 50), 4), p99Ms: round(percentile(pl, 99), 4) };
  const sharedIds = round(shared / (queries.length * o.k), 4);
  log(
    `  search p50: vectorseal ${vsP.p50Ms} ms, plaintext ${plP.p50Ms} ms; ` +
      `identical results ${identical}/${queries.length}, shared ids ${sharedIds}`,
  );
  return {
    queries: queries.length,
    k: o.k,
    ef: o.ef,
    vectorseal: vsP,
    plaintext: plP,
    p50Ratio: ratio(percentile(vs, 50), percentile(pl, 50), 3),
    p99Ratio: ratio(percentile(vs, 99), percentile(pl, 99), 3),
    identicalResults: identical,
    sharedIds,
  };
}
