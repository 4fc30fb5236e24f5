// Store directories and opening live in test/helpers/store.ts; re-exported for tests written before the move.
export { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomVectors(n: number, dim: number, seed = 1): Float32Array[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => r() * 2 - 1));
}

/** The vector of record i: reproducible from i alone, and no two records alike (mulberry32 seeded by i). */
export function recordVector(i: number, dim: number): Float32Array {
  const r = prng(i + 1);
  return Float32Array.from({ length: dim }, () => r() - 0.5);
}

/** The ids of the k live records nearest to `q` in squared L2, by brute force. */
export function exactNearest(live: ReadonlyMap<string, Float32Array>, q: Float32Array, k: number): string[] {
  const d = (v: Float32Array): number => {
    let s = 0;
    for (let j = 0; j < q.length; j++) s += ((v[j] as number) - (q[j] as number)) ** 2;
    return s;
  };
  return [...live]
    .map(([id, v]) => [id, d(v)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, k)
    .map(([id]) => id);
}
