import { describe, expect, it } from 'vitest';
import { scanNearest, TopK } from '../../src/store/exact-scan.js';
import { equalityConditions, onlyEquality } from '../../src/store/filter-plan.js';
import { scanIsCheaper, walkEf } from '../../src/store/filtered-search.js';
import { MetadataIndex } from '../../src/store/metadata-index.js';
import type { Collection } from '../../src/store/index.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { prng } from './helpers.js';

const N = 20_000;
const DIM = 96;
const K = 10;
const QUERIES = 60;
const SPREAD = 3;

interface Meta {
  s1: number;
  s10: number;
  s50: number;
  n: number;
  tag: string;
}

function dataset(seed: number): { vectors: Float32Array[]; meta: Meta[]; queries: Float32Array[] } {
  const r = prng(seed);
  // Loose clusters: wide enough that a filtered graph walk loses neighbours (tight ones would hide it), tight enough for HNSW's own recall.
  const centres = Array.from({ length: 40 }, () => Float32Array.from({ length: DIM }, () => r() * 4 - 2));
  const around = (): Float32Array =>
    Float32Array.from(centres[Math.floor(r() * centres.length)] as Float32Array, (x) => x + (r() + r() + r() - 1.5) * SPREAD);
  const vectors = Array.from({ length: N }, around);
  const meta = vectors.map((_, i) => ({ s1: i % 100, s10: i % 10, s50: i % 2, n: i, tag: `t${i % 50}` }));
  return { vectors, meta, queries: Array.from({ length: QUERIES }, around) };
}

function exact(
  vectors: Float32Array[],
  q: Float32Array,
  k: number,
  accept: (i: number) => boolean,
  space: 'l2' | 'cosine' = 'l2',
): string[] {
  const scored: [number, number][] = [];
  const qn = Math.hypot(...q);
  for (let i = 0; i < vectors.length; i++) {
    if (!accept(i)) continue;
    const v = vectors[i] as Float32Array;
    let d = 0;
    if (space === 'l2') {
      for (let j = 0; j < DIM; j++) d += ((v[j] as number) - (q[j] as number)) ** 2;
    } else {
      let dot = 0;
      for (let j = 0; j < DIM; j++) dot += (v[j] as number) * (q[j] as number);
      d = 1 - dot / (Math.hypot(...v) * qn);
    }
    scored.push([d, i]);
  }
  scored.sort((a, b) => a[0] - b[0]);
  return scored.slice(0, k).map(([, i]) => `r${i}`);
}

interface Case {
  name: string;
  filter: (i: number) => Record<string, unknown>;
  accept: (i: number, m: Meta) => boolean;
  /** Exact: the scan path must return exactly the brute-force ids, in order. */
  exact?: boolean;
}

const CASES: Case[] = [
  { name: 'unfiltered (the same walk, for reference)', filter: () => ({}), accept: () => true },
  { name: '1% (equality)', filter: (i) => ({ s1: i % 100 }), accept: (i, m) => m.s1 === i % 100, exact: true },
  { name: '2% ($in)', filter: (i) => ({ tag: { $in: [`t${i % 50}`] } }), accept: (i, m) => m.tag === `t${i % 50}`, exact: true },
  {
    name: '2% ($in of two 1% values)',
    filter: (i) => ({ s1: { $in: [i % 100, (i + 7) % 100] } }),
    accept: (i, m) => m.s1 === i % 100 || m.s1 === (i + 7) % 100,
    exact: true,
  },
  { name: '10% (equality)', filter: (i) => ({ s10: i % 10 }), accept: (i, m) => m.s10 === i % 10 },
  { name: '50% (equality)', filter: (i) => ({ s50: i % 2 }), accept: (i, m) => m.s50 === i % 2 },
  {
    name: '1% within $and, with a range',
    filter: (i) => ({ $and: [{ s10: i % 10 }, { n: { $lt: N / 10 } }] }),
    accept: (i, m) => m.s10 === i % 10 && m.n < N / 10,
    exact: true,
  },
  { name: '5% by a range only (no index: sampled)', filter: () => ({ n: { $gte: N * 0.95 } }), accept: (_i, m) => m.n >= N * 0.95 },
  {
    name: '0.5% by a range only (no index: sampled, none in the sample)',
    filter: () => ({ n: { $lt: N * 0.005 } }),
    accept: (_i, m) => m.n < N * 0.005,
  },
];

function recallOf(
  col: Collection<Meta>,
  vectors: Float32Array[],
  meta: Meta[],
  queries: Float32Array[],
  c: Case,
  space: 'l2' | 'cosine' = 'l2',
): number {
  let hits = 0;
  let total = 0;
  queries.forEach((q, qi) => {
    const got = col.search(q, K, { filter: c.filter(qi) as never });
    for (const h of got) expect(c.accept(qi, h.metadata as Meta)).toBe(true);
    const truth = exact(vectors, q, K, (i) => c.accept(qi, meta[i] as Meta), space);
    if (c.exact) expect(got.map((h) => h.id)).toEqual(truth);
    const want = new Set(truth);
    hits += got.filter((h) => want.has(h.id)).length;
    total += truth.length;
  });
  return hits / total;
}

describe('filtered search against exact brute force', () => {
  it('recall@10 >= 0.98 at every selectivity, exact for selective filters: memtable, flushed, reopened', async () => {
    const { vectors, meta, queries } = dataset(7);
    const d = storeDirs();
    let store = await openTestStore(d, { autoFlushRecords: 0 });
    let col = await store.createCollection<Meta>('f', { dim: DIM, space: 'l2' });
    for (let i = 0; i < N; i += 2000)
      await col.upsert(vectors.slice(i, i + 2000).map((v, j) => ({ id: `r${i + j}`, vector: v, metadata: meta[i + j] as Meta })));
    const phases: [string, () => Promise<void>][] = [
      ['memtable', async () => undefined],
      ['flushed', () => col.flush()],
      [
        'reopened',
        async () => {
          await store.close();
          store = await openTestStore(d, { autoFlushRecords: 0 });
          col = store.collection<Meta>('f');
        },
      ],
    ];
    for (const [phase, step] of phases) {
      await step();
      for (const c of CASES) {
        const recall = recallOf(col, vectors, meta, queries, c);
        console.log(`${phase}: ${c.name}: recall@${K} ${recall.toFixed(4)}`);
        expect(recall, `${phase}: ${c.name}`).toBeGreaterThanOrEqual(0.98);
      }
    }
  });

  it('deleted and updated records: the filter sees the current metadata, never a dead record', async () => {
    const { vectors, meta, queries } = dataset(11);
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const col = await store.createCollection<Meta>('f', { dim: DIM, space: 'l2' });
    const n = 5000;
    await col.upsert(vectors.slice(0, n).map((v, i) => ({ id: `r${i}`, vector: v, metadata: meta[i] as Meta })));
    await col.flush();
    // Every record with s1 = 3 moves to s1 = 1003; every one with s1 = 4 is deleted.
    const moved = meta.slice(0, n).filter((m) => m.s1 === 3);
    await col.updateMetadata(moved.map((m) => ({ id: `r${m.n}`, metadata: { ...m, s1: 1003 } })));
    await col.delete(
      meta
        .slice(0, n)
        .filter((m) => m.s1 === 4)
        .map((m) => `r${m.n}`),
    );
    const q = queries[0] as Float32Array;
    expect(col.search(q, K, { filter: { s1: 3 } })).toEqual([]);
    expect(col.search(q, K, { filter: { s1: 4 } })).toEqual([]);
    const got = col.search(q, K, { filter: { s1: 1003 } }).map((h) => h.id);
    expect(got).toEqual(exact(vectors.slice(0, n), q, K, (i) => (meta[i] as Meta).s1 === 3));
    // Flushing the update keeps it so.
    await col.flush();
    expect(col.search(q, K, { filter: { s1: 3 } })).toEqual([]);
    expect(col.search(q, K, { filter: { s1: 1003 } }).map((h) => h.id)).toEqual(got);
  });

  it('cosine: the exact scan ranks as hnswlib does', async () => {
    const { vectors, meta, queries } = dataset(5);
    const d = storeDirs();
    let store = await openTestStore(d, { autoFlushRecords: 0 });
    const n = 6000;
    const col = await store.createCollection<Meta>('c', { dim: DIM, space: 'cosine' });
    await col.upsert(vectors.slice(0, n).map((v, i) => ({ id: `r${i}`, vector: v, metadata: meta[i] as Meta })));
    await col.flush();
    await store.close();
    store = await openTestStore(d, { autoFlushRecords: 0 });
    const c = store.collection<Meta>('c');
    queries.slice(0, 20).forEach((q, qi) => {
      const got = c.search(q, K, { filter: { s1: qi } });
      expect(got.map((h) => h.id)).toEqual(exact(vectors.slice(0, n), q, K, (i) => (meta[i] as Meta).s1 === qi, 'cosine'));
      // Scores as hnswlib reports them: 1 - distance.
      for (let j = 1; j < got.length; j++)
        expect((got[j] as { score: number }).score).toBeLessThanOrEqual((got[j - 1] as { score: number }).score + 1e-6);
    });
  });
});

describe('metadata index and filter planning', () => {
  it('indexes own scalar values only, as the filter compares them', () => {
    const proto = JSON.parse('{"__proto__": 5, "a": 1}') as Record<string, unknown>;
    const metas = [{ a: 1 }, { a: '1' }, { a: true }, { a: -0 }, { a: 0 }, { a: [1] }, { a: { b: 2 } }, proto, undefined, { a: null }];
    const idx = new MetadataIndex(metas);
    const labels = (f: Record<string, unknown>): number[] => {
      const [c] = equalityConditions(f);
      return c
        ? idx
            .postings(c)
            .flat()
            .sort((x, y) => x - y)
        : [];
    };
    expect(labels({ a: 1 })).toEqual([0, 7]);
    expect(labels({ a: '1' })).toEqual([1]);
    expect(labels({ a: true })).toEqual([2]);
    expect(labels({ a: 0 })).toEqual([3, 4]);
    expect(labels({ a: { $eq: -0 } })).toEqual([3, 4]);
    expect(labels({ a: null })).toEqual([9]);
    expect(labels({ 'a.b': 2 })).toEqual([6]);
    expect(labels({ __proto__: 5 } as Record<string, unknown>)).toEqual([]);
    expect(labels(JSON.parse('{"__proto__": 5}') as Record<string, unknown>)).toEqual([7]);
    expect(labels({ constructor: 1 })).toEqual([]);
    expect(labels({ a: { $in: [1, true] } })).toEqual([0, 2, 7]);
    // Disjunctions, negations and ranges imply no value: nothing to index.
    expect(equalityConditions({ $or: [{ a: 1 }, { a: 2 }] })).toEqual([]);
    expect(equalityConditions({ $not: { a: 1 } })).toEqual([]);
    expect(equalityConditions({ a: { $gt: 1 } })).toEqual([]);
    expect(equalityConditions({ $and: [{ a: 1 }, { b: { $in: [2, 2] } }] }).map((c) => [c.field, c.values])).toEqual([
      ['a', [1]],
      ['b', [2]],
    ]);
  });

  it('grows with an appended layer', () => {
    const metas: { k: string }[] = [{ k: 'x' }];
    const idx = new MetadataIndex(metas);
    const [c] = equalityConditions({ k: 'x' });
    expect(idx.count(c as never)).toBe(1);
    metas.push({ k: 'x' }, { k: 'y' });
    expect(idx.count(c as never)).toBe(2);
  });
});

describe('exact scan and routing', () => {
  it('scanNearest equals a full sort at several selectivities, l2 / ip / cosine, flat and per-row, dead rows skipped', () => {
    const r = prng(3);
    const dim = 37; // not a multiple of 4 or of the early-abandon block
    const n = 3000;
    const flat = Float32Array.from({ length: n * dim }, () => r() * 2 - 1);
    const perRow = Array.from({ length: n }, (_, i) => flat.subarray(i * dim, (i + 1) * dim));
    const dead = new Uint8Array(n);
    for (let i = 0; i < n; i += 13) dead[i] = 1;
    const dist = (i: number, q: number[], space: 'l2' | 'ip' | 'cosine'): number => {
      const v = perRow[i] as Float32Array;
      let l2 = 0;
      let dot = 0;
      let vn = 0;
      let qn = 0;
      for (let j = 0; j < dim; j++) {
        const x = v[j] as number;
        const y = q[j] as number;
        l2 += (x - y) ** 2;
        dot += x * y;
        vn += x * x;
        qn += y * y;
      }
      return space === 'l2' ? l2 : space === 'ip' ? 1 - dot : 1 - dot / Math.sqrt(vn * qn);
    };
    for (const space of ['l2', 'ip', 'cosine'] as const) {
      for (const every of [1, 3, 10, 100, 1000]) {
        const q = Array.from({ length: dim }, () => r() * 2 - 1);
        const lists = [Array.from({ length: Math.ceil(n / every) }, (_, i) => i * every)];
        const admit = (label: number): boolean => label % 7 !== 0;
        const want = (lists[0] as number[])
          .filter((i) => dead[i] === 0 && admit(i))
          .map((i) => [dist(i, q, space), i] as const)
          .sort((a, b) => a[0] - b[0])
          .slice(0, 10);
        for (const rows of [
          { flat, dim },
          { perRow, dim },
        ]) {
          const got = scanNearest(rows, q, 10, space, dead, every === 1 ? undefined : lists, n, admit);
          expect(got.neighbors, `${space} 1/${every}`).toEqual(want.map(([, i]) => i));
          got.distances.forEach((d, j) => expect(d).toBeCloseTo((want[j] as readonly [number, number])[0], 9));
        }
      }
    }
  });

  it('TopK keeps the k smallest of any order', () => {
    const r = prng(9);
    for (const k of [1, 2, 5, 10, 33]) {
      const xs = Array.from({ length: 500 }, () => r());
      const top = new TopK(k);
      xs.forEach((x, i) => {
        if (x < top.bound) top.push(i, x);
      });
      const want = xs
        .map((x, i) => [x, i] as const)
        .sort((a, b) => a[0] - b[0])
        .slice(0, k);
      expect(top.sorted().neighbors).toEqual(want.map(([, i]) => i));
    }
  });

  it('routes by estimated matches: a scan for few, a graph walk for many, the crossover falling with the layer size', () => {
    expect(scanIsCheaper(5000, 4096, 64)).toBe(true);
    expect(scanIsCheaper(200, 20_000, 64)).toBe(true);
    expect(scanIsCheaper(2000, 20_000, 64)).toBe(true);
    expect(scanIsCheaper(10_000, 20_000, 64)).toBe(false);
    expect(scanIsCheaper(10_000, 1_000_000, 64)).toBe(true);
    expect(scanIsCheaper(100_000, 1_000_000, 64)).toBe(false);
    const crossover = (size: number): number => {
      let m = 1;
      while (m < size && scanIsCheaper(m, size, 64)) m = Math.ceil(m * 1.05);
      return m / size;
    };
    expect(crossover(100_000)).toBeLessThan(crossover(20_000));
    expect(walkEf(64, 1)).toBe(64);
    expect(walkEf(64, 0.25)).toBe(128);
    expect(walkEf(64, 1e-9)).toBe(4096);
  });

  it('onlyEquality: the index decides equality and $in (also within $and), nothing else', () => {
    expect(onlyEquality({ a: 1 })).toBe(true);
    expect(onlyEquality({ a: { $eq: 'x' } })).toBe(true);
    expect(onlyEquality({ a: { $in: [1, 2] } })).toBe(true);
    expect(onlyEquality({ $and: [{ a: 1 }, { b: { $in: [2] } }] })).toBe(true);
    expect(onlyEquality({ a: { $eq: 1, $in: [1] } })).toBe(false);
    expect(onlyEquality({ a: { $ne: 1 } })).toBe(false);
    expect(onlyEquality({ a: { $gt: 1 } })).toBe(false);
    expect(onlyEquality({ $or: [{ a: 1 }] })).toBe(false);
    expect(onlyEquality({ $not: { a: 1 } })).toBe(false);
    expect(onlyEquality({ a: [1] })).toBe(false);
    expect(onlyEquality({ a: { b: 1 } })).toBe(false);
  });

  it('a where predicate beside an equality filter still runs on every result (the index never decides alone)', async () => {
    const { vectors, meta, queries } = dataset(13);
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const col = await store.createCollection<Meta>('w', { dim: DIM, space: 'l2' });
    const n = 8000;
    await col.upsert(vectors.slice(0, n).map((v, i) => ({ id: `r${i}`, vector: v, metadata: meta[i] as Meta })));
    await col.flush();
    const q = queries[0] as Float32Array;
    for (const [filter, accept] of [
      [{ s1: 5 }, (m: Meta) => m.s1 === 5],
      [{ s50: 1 }, (m: Meta) => m.s50 === 1],
    ] as const) {
      const where = (m: Meta | undefined): boolean => (m as Meta).n % 3 === 0;
      const got = col.search(q, K, { filter, where: where as never });
      const truth = exact(vectors.slice(0, n), q, K, (i) => accept(meta[i] as Meta) && where(meta[i]));
      expect(got.length).toBe(K);
      for (const h of got) expect(where(h.metadata as Meta) && accept(h.metadata as Meta)).toBe(true);
      if (filter.s1 !== undefined) expect(got.map((h) => h.id)).toEqual(truth);
    }
    await store.close();
  });
});
