import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Space } from '../../src/store/index.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

const same = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('vectors kept once: in the index for l2 and ip, in the vector block for cosine', () => {
  for (const space of ['l2', 'ip', 'cosine'] as Space[]) {
    it(`${space}: exact vectors after flush, reopen, delete, upsert and compaction`, async () => {
      const d = storeDirs();
      const vecs = randomVectors(600, 24, 5);
      let store = await openTestStore(d);
      let c = await store.createCollection('c', { dim: 24, space });
      await c.upsert(vecs.slice(0, 400).map((v, i) => ({ id: `r${i}`, vector: v, metadata: { n: i, tags: ['a', { b: i }] } })));
      await c.flush();
      const check = (): void => {
        for (let i = 0; i < 600; i++) {
          const r = c.get(`r${i}`);
          if (i >= 300 && i < 350) {
            expect(r).toBeUndefined();
            continue;
          }
          expect(r, `r${i}`).toBeDefined();
          expect(same(r?.vector as Float32Array, vecs[i] as Float32Array)).toBe(true);
        }
      };
      // Vectors served from memory after a flush (the index only, for l2 and ip).
      expect(same(c.get('r7')?.vector as Float32Array, vecs[7] as Float32Array)).toBe(true);
      await c.upsert(vecs.slice(400).map((v, i) => ({ id: `r${400 + i}`, vector: v })));
      await c.delete(Array.from({ length: 50 }, (_, i) => `r${300 + i}`));
      await c.flush();
      check();
      await store.close();

      store = await openTestStore(d);
      c = store.collection('c');
      check();
      const vecFile = join(d.dir, 'collections', c.info.id, 'seg', '000000000001.vectors.vseg');
      const size = (await fs.stat(vecFile)).size;
      // 400 × 24 float32 would be 38,400 bytes: only the ids (and the seals) are in the block for l2 and ip.
      if (space === 'cosine') expect(size).toBeGreaterThan(400 * 24 * 4);
      else expect(size).toBeLessThan(400 * 24 * 4);
      // A record superseded in a loaded segment, then compaction copying from the index.
      await c.upsert({ id: 'r1', vector: vecs[1] as Float32Array, metadata: { again: true } });
      await c.compact();
      check();
      expect(c.get('r1')?.metadata).toEqual({ again: true });
      await store.close();

      store = await openTestStore(d);
      c = store.collection('c');
      check();
      expect(c.get('r2')?.metadata).toEqual({ n: 2, tags: ['a', { b: 2 }] });
    });
  }

  it('returned metadata is the stored value, deeply frozen (read-only)', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const c = await store.createCollection('m', { dim: 4 });
    const meta = { n: 1, nested: { list: [1, { x: 2 }] } };
    await c.upsert({ id: 'a', vector: [1, 0, 0, 0], metadata: meta });
    // The caller's object is not captured.
    meta.n = 99;
    const hit = c.search(new Float32Array([1, 0, 0, 0]), 1)[0];
    expect(hit?.metadata).toEqual({ n: 1, nested: { list: [1, { x: 2 }] } });
    const m = hit?.metadata as { nested: { list: [number, { x: number }] } };
    expect(Object.isFrozen(m) && Object.isFrozen(m.nested) && Object.isFrozen(m.nested.list) && Object.isFrozen(m.nested.list[1])).toBe(
      true,
    );
    expect(() => {
      (m.nested.list[1] as { x: number }).x = 3;
    }).toThrow(TypeError);
    expect(c.get('a')?.metadata).toEqual({ n: 1, nested: { list: [1, { x: 2 }] } });
  });

  it('search merges layers closest first and checks the query', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const c = await store.createCollection('s', { dim: 8 });
    const vecs = randomVectors(300, 8, 9);
    for (let part = 0; part < 3; part++) {
      await c.upsert(vecs.slice(part * 100, part * 100 + 100).map((v, i) => ({ id: `p${part * 100 + i}`, vector: v })));
      if (part < 2) await c.flush();
    }
    const q = vecs[42] as Float32Array;
    const brute = vecs
      .map((v, i) => ({ id: `p${i}`, d: v.reduce((s, x, j) => s + (x - (q[j] as number)) ** 2, 0) }))
      .sort((a, b) => a.d - b.d)
      .slice(0, 5);
    const got = c.search(q, 5, { ef: 300 });
    expect(got.map((h) => h.id)).toEqual(brute.map((b) => b.id));
    for (let i = 1; i < got.length; i++)
      expect((got[i] as { score: number }).score).toBeGreaterThanOrEqual((got[i - 1] as { score: number }).score);
    // Arrays and Float32Arrays give the same hits; bad queries are refused.
    expect(c.search(Array.from(q), 5, { ef: 300 }).map((h) => h.id)).toEqual(got.map((h) => h.id));
    expect(() => c.search(new Float32Array(8).fill(Number.NaN), 5)).toThrow(/finite/);
    expect(() => c.search(new Float32Array(7), 5)).toThrow(/dimensions/);
  });

  it('a segment of several MiB (several read batches) reads back the same', async () => {
    const d = storeDirs();
    const dim = 256;
    const n = Math.ceil((4 << 20) / (dim * 4)) + 500;
    let store = await openTestStore(d);
    let c = await store.createCollection('big', { dim, space: 'cosine', M: 4, efConstruction: 8 });
    const vecs = randomVectors(n, dim, 11);
    await c.upsert(vecs.map((v, i) => ({ id: `b${i}`, vector: v })));
    await store.close();
    store = await openTestStore(d);
    c = store.collection('big');
    expect(c.count).toBe(n);
    for (const i of [0, 1, n >> 1, n - 1]) expect(same(c.get(`b${i}`)?.vector as Float32Array, vecs[i] as Float32Array)).toBe(true);
  });
});
