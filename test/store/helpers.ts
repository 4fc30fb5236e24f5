import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { openStore, type OpenStoreOptions, type Store } from '../../src/store/index.js';

export interface TestStoreDirs {
  root: string;
  dir: string;
  keyDir: string;
  stagingDir: string;
}

/** A temp root with a data dir, a key dir (outside the data dir) and a staging dir; removed after the test. */
export function storeDirs(): TestStoreDirs {
  const root = mkdtempSync(join(tmpdir(), 'vs-store-'));
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  return { root, dir: join(root, 'data'), keyDir: join(root, 'keys'), stagingDir: join('/dev/shm', `vs-test-${process.pid}-${Math.random().toString(36).slice(2)}`) };
}

const open: Store[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close({ flush: false }).catch(() => undefined);
});

/** Opens (creating) a store in `d` with its keys in d.keyDir; closed after the test. */
export async function openTestStore(d: TestStoreDirs, extra: Partial<OpenStoreOptions> = {}): Promise<Store> {
  const s = await openStore({ dir: d.dir, create: true, keys: { provider: 'local', keyDir: d.keyDir }, ...extra });
  open.push(s);
  return s;
}

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
