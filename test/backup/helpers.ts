import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Collection } from '../../src/store/index.js';

/** Every regular file under `dir`, relative paths. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else out.push(r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

export function f32(values: ArrayLike<number>): Buffer {
  return Buffer.from(Float32Array.from(values as number[]).buffer);
}

/** Search results of `queries` as comparable plain data. */
export function searchAll(c: Collection, queries: Float32Array[], k = 10): unknown[] {
  return queries.map((q) => c.search(q, k, { ef: 400 }).map((h) => [h.id, h.score, h.metadata]));
}

/** Exact k nearest ids by squared L2 over `records`. */
export function bruteForce(records: Map<string, Float32Array>, q: Float32Array, k: number): string[] {
  const d = [...records].map(([id, v]) => {
    let s = 0;
    for (let i = 0; i < q.length; i++) s += ((v[i] as number) - (q[i] as number)) ** 2;
    return [id, s] as const;
  });
  d.sort((a, b) => a[1] - b[1]);
  return d.slice(0, k).map(([id]) => id);
}
