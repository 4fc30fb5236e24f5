/**
 * A deterministic text embedder for tests (no model can be downloaded here):
 * every lower-cased word adds a pseudo-random dense vector seeded by its
 * hash, and the sum is normalized. Texts sharing words are close; nothing
 * else about it is meaningful.
 */
export const HASH_DIM = 64;

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hashEmbed(text: string, dim = HASH_DIM): number[] {
  const v = new Array<number>(dim).fill(0);
  const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? ['empty'];
  for (const w of words) {
    const r = mulberry32(fnv1a(w));
    for (let i = 0; i < dim; i++) v[i] = (v[i] as number) + (r() * 2 - 1);
  }
  const norm = Math.hypot(...v) || 1;
  // Rounded through float32 so that the test knows the exact bytes a store would hold.
  return Array.from(Float32Array.from(v.map((x) => x / norm)));
}
