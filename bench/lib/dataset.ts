/**
 * A deterministic data set: ids, float32 vectors in [-1, 1) and small
 * metadata objects, the same bytes for every contender and every run.
 */
export interface Dataset {
  count: number;
  dim: number;
  ids: string[];
  /** count × dim components, record i at [i × dim, (i + 1) × dim). */
  vectors: Float32Array;
  metadata: Record<string, unknown>[];
}

const LANGS = ['en', 'de', 'fr', 'es', 'ja'];
const TAGS = ['faq', 'howto', 'news', 'spec', 'blog', 'ref'];

/** xorshift32: fast enough for 10^8 components. */
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

export function makeDataset(count: number, dim: number, seed = 7): Dataset {
  const r = rng(seed);
  const vectors = new Float32Array(count * dim);
  for (let i = 0; i < vectors.length; i++) vectors[i] = r() * 2 - 1;
  const ids = Array.from({ length: count }, (_, i) => `doc-${String(i).padStart(7, '0')}`);
  const metadata = ids.map((_, i) => ({
    lang: LANGS[i % LANGS.length] as string,
    tag: TAGS[(i * 7) % TAGS.length] as string,
    n: i,
    title: `document ${i}`,
    score: Math.round(r() * 1000) / 1000,
  }));
  return { count, dim, ids, vectors, metadata };
}

/** Record i's vector (a view). */
export function vectorOf(d: Dataset, i: number): Float32Array {
  return d.vectors.subarray(i * d.dim, (i + 1) * d.dim);
}

/** Query vectors near records of the data set (a record plus small noise), so that searches have real neighbours. */
export function makeQueries(d: Dataset, count: number, seed = 11): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => {
    const base = vectorOf(d, Math.floor(r() * d.count));
    return Float32Array.from(base, (x) => x + (r() - 0.5) * 0.1);
  });
}
