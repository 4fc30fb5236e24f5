import { describe, expect, it } from 'vitest';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { prng } from './helpers.js';

const N = 20_000;
const DIM = 128;
const CLUSTERS = 50;
const QUERIES = 200;
const K = 10;

/** Seeded clustered data: Gaussian-ish blobs around random centres. */
function clustered(seed: number): { data: Float32Array[]; queries: Float32Array[] } {
  const r = prng(seed);
  const gauss = (): number => (r() + r() + r() + r() - 2) * 0.6;
  const centers = Array.from({ length: CLUSTERS }, () => Float32Array.from({ length: DIM }, () => r() * 4 - 2));
  const around = (): Float32Array => {
    const c = centers[Math.floor(r() * CLUSTERS)] as Float32Array;
    return Float32Array.from(c, (x) => x + gauss());
  };
  return { data: Array.from({ length: N }, around), queries: Array.from({ length: QUERIES }, around) };
}

function exactTopK(data: Float32Array[], q: Float32Array, k: number): string[] {
  const best: [number, number][] = [];
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as Float32Array;
    let d = 0;
    for (let j = 0; j < DIM; j++) {
      const t = (v[j] as number) - (q[j] as number);
      d += t * t;
    }
    if (best.length < k || d < (best[best.length - 1] as [number, number])[0]) {
      best.push([d, i]);
      best.sort((a, b) => a[0] - b[0]);
      if (best.length > k) best.pop();
    }
  }
  return best.map(([, i]) => `v${i}`);
}

describe('recall against exact search', () => {
  it(`recall@${K} >= 0.95 on ${N} x ${DIM} clustered vectors, identical after reopen and after a KEK rotation`, async () => {
    const { data, queries } = clustered(2024);
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('bench', { dim: DIM, space: 'l2' });
    for (let i = 0; i < N; i += 2000) {
      await col.upsert(data.slice(i, i + 2000).map((v, j) => ({ id: `v${i + j}`, vector: v })));
    }
    await col.flush();
    let hits = 0;
    const before = queries.map((q) => col.search(q, K));
    queries.forEach((q, i) => {
      const truth = new Set(exactTopK(data, q, K));
      hits += (before[i] as { id: string }[]).filter((h) => truth.has(h.id)).length;
    });
    const recall = hits / (QUERIES * K);
    console.log(`recall@${K} = ${recall.toFixed(4)} (${N} x ${DIM}, ${QUERIES} queries, M=16, efConstruction=200, ef=64)`);
    expect(recall).toBeGreaterThanOrEqual(0.95);

    await store.close();
    store = await openTestStore(d);
    expect(queries.map((q) => store.collection('bench').search(q, K))).toEqual(before);
    await store.rotateKek();
    expect(queries.map((q) => store.collection('bench').search(q, K))).toEqual(before);
    await store.close();
    store = await openTestStore(d);
    expect(queries.map((q) => store.collection('bench').search(q, K))).toEqual(before);
  }, 180_000);
});
