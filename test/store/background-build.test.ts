import { describe, expect, it } from 'vitest';
import { pickRun } from '../../src/store/compaction.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

/** The exact nearest id of `q` among `vectors` (squared L2). */
function exactNearest(q: Float32Array, vectors: Map<string, Float32Array>): string {
  let best = '';
  let bestD = Infinity;
  for (const [id, v] of vectors) {
    let d = 0;
    for (let i = 0; i < q.length; i++) d += ((v[i] as number) - (q[i] as number)) ** 2;
    if (d < bestD) {
      bestD = d;
      best = id;
    }
  }
  return best;
}

describe('graphs built off the caller path', () => {
  it('finds every record at once after upsert, also while its graph is being built on the worker', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir, autoFlushRecords: 0 });
    const c = await store.createCollection('c', { dim: 16 });
    const all = new Map<string, Float32Array>();
    const first = randomVectors(4000, 16, 3);
    await c.upsert(first.map((v, i) => ({ id: `a${i}`, vector: v })));
    first.forEach((v, i) => all.set(`a${i}`, v));
    // Searchable before any graph exists: the memtable is scanned exactly.
    for (let i = 0; i < 4000; i += 97) expect(c.search(first[i]!, 1)[0]?.id).toBe(`a${i}`);
    const flushing = c.flush();
    let settled = false;
    void flushing.then(() => (settled = true));
    // Yield once so the flush freezes the memtable and hands its graph to the worker.
    await new Promise((r) => setTimeout(r, 5));
    const more = randomVectors(500, 16, 4);
    let duringBuild = 0;
    for (let i = 0; i < more.length; i += 50) {
      const batch = more.slice(i, i + 50).map((v, j) => ({ id: `b${i + j}`, vector: v }));
      await c.upsert(batch);
      for (const r of batch) all.set(r.id, r.vector);
      if (!settled && c.stats().unflushed > 4000) duringBuild++;
      // Each new record is its own nearest neighbour at once; the frozen ones stay found too.
      for (const r of batch) expect(c.search(r.vector, 1)[0]?.id).toBe(r.id);
      expect(c.search(first[i]!, 1)[0]?.id).toBe(`a${i}`);
    }
    expect(duringBuild, 'some searches ran while the frozen memtable was still being indexed').toBeGreaterThan(0);
    await flushing;
    expect(c.stats().segments).toBe(1);
    // Merged results across the graph and the tail agree with exact search.
    const queries = randomVectors(50, 16, 9);
    let agree = 0;
    for (const q of queries) if (c.search(q, 1, { ef: 200 })[0]?.id === exactNearest(q, all)) agree++;
    expect(agree).toBeGreaterThanOrEqual(49);
    await store.close();
    const again = await openTestStore(d, { stagingDir: d.stagingDir });
    expect(again.collection('c').count).toBe(4500);
    expect(again.collection('c').search(more[7]!, 1)[0]?.id).toBe('b7');
  });

  it('compacts in the background: flush returns without merging, the groups settle within the bound', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir, autoFlushRecords: 0, maxSegments: 3 });
    const c = await store.createCollection('c', { dim: 8 });
    const vectors = randomVectors(600, 8, 5);
    for (let i = 0; i < 600; i += 100) {
      await c.upsert(vectors.slice(i, i + 100).map((v, j) => ({ id: `r${i + j}`, vector: v })));
      if (i === 200) await c.delete(['r0', 'r150']);
      await c.flush();
    }
    await c.whenIdle();
    expect(c.stats().segments).toBeLessThanOrEqual(3);
    expect(c.count).toBe(598);
    expect(c.get('r0')).toBeUndefined();
    for (const i of [1, 149, 151, 599]) expect(c.search(vectors[i]!, 1)[0]?.id).toBe(`r${i}`);
    await store.close();
    const again = await openTestStore(d, { stagingDir: d.stagingDir });
    const r = again.collection('c');
    expect(r.count).toBe(598);
    expect(r.get('r150')).toBeUndefined();
  });

  it('merges FANIN groups of one tier, and the smallest run above the limit', () => {
    expect(pickRun([{ count: 5000 }, { count: 100 }, { count: 100 }, { count: 100 }, { count: 100 }], 4)).toEqual([1, 5]);
    expect(pickRun([{ count: 5000 }, { count: 100 }, { count: 100 }, { count: 100 }, { count: 100 }], 8)).toBeUndefined();
    expect(pickRun([{ count: 5000 }, { count: 100 }, { count: 100 }], 8)).toBeUndefined();
    expect(pickRun([{ count: 5000 }, { count: 1000 }, { count: 100 }, { count: 10 }], 3)).toEqual([2, 4]);
    // Tiered merging of 64 equal flushes: every record is rewritten a few times, never once per flush.
    let groups: { count: number; writes: number }[] = [];
    let written = 0;
    for (let f = 0; f < 64; f++) {
      groups.push({ count: 1000, writes: 1 });
      written += 1000;
      for (let run = pickRun(groups, 8); run; run = pickRun(groups, 8)) {
        const merged = groups.slice(run[0], run[1]);
        const count = merged.reduce((n, g) => n + g.count, 0);
        written += count;
        groups = [...groups.slice(0, run[0]), { count, writes: 0 }, ...groups.slice(run[1])];
      }
      expect(groups.length).toBeLessThanOrEqual(8);
    }
    expect(written / 64_000).toBeLessThanOrEqual(4);
  });
});
