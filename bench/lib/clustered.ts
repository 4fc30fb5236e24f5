import type { Dataset } from './dataset.js';

/**
 * A clustered data set, nearer real embeddings than uniform noise (whose
 * nearest neighbours are all nearly equidistant): 64 random centres, each
 * record a centre plus noise. Metadata carries fields of known selectivity
 * for filtered search: s1 = i mod 100 (1% per value), s10 = i mod 10 (10%),
 * s50 = i mod 2 (50%), beside the usual small fields.
 */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

const CENTRES = 64;
const LANGS = ['en', 'de', 'fr', 'es', 'ja'];

export function makeClusteredDataset(count: number, dim: number, seed = 13): Dataset {
  const r = rng(seed);
  const centres = new Float32Array(CENTRES * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = r() * 2 - 1;
  const vectors = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const c = Math.floor(r() * CENTRES) * dim;
    for (let j = 0; j < dim; j++) vectors[i * dim + j] = (centres[c + j] as number) + (r() * 2 - 1) * 0.6;
  }
  const ids = Array.from({ length: count }, (_, i) => `doc-${String(i).padStart(7, '0')}`);
  const metadata = ids.map((_, i) => ({
    lang: LANGS[i % LANGS.length] as string,
    title: `document ${i}`,
    s1: i % 100,
    s10: i % 10,
    s50: i % 2,
  }));
  return { count, dim, ids, vectors, metadata };
}

/** Exact k nearest labels by squared L2 among the records `accept` admits (ground truth for recall). */
export function bruteForce(d: Dataset, q: Float32Array, k: number, accept?: (i: number) => boolean): number[] {
  const dim = d.dim;
  const v = d.vectors;
  const best: number[] = [];
  const dist: number[] = [];
  for (let i = 0; i < d.count; i++) {
    if (accept && !accept(i)) continue;
    let s = 0;
    const o = i * dim;
    for (let j = 0; j < dim; j++) {
      const x = (v[o + j] as number) - (q[j] as number);
      s += x * x;
    }
    if (best.length === k && s >= (dist[k - 1] as number)) continue;
    let at = best.length < k ? best.length : k - 1;
    while (at > 0 && (dist[at - 1] as number) > s) {
      best[at] = best[at - 1] as number;
      dist[at] = dist[at - 1] as number;
      at--;
    }
    best[at] = i;
    dist[at] = s;
  }
  return best;
}
