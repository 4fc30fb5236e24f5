import { describe, expect, it } from 'vitest';
import { graphBackend } from '../../src/hnsw/index.js';
import type { Collection } from '../../src/store/index.js';
import type { MemtableGraph } from '../../src/store/memtable-graph.js';
import { GROW_MIN } from '../../src/store/memtable-graph.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { exactNearest, recordVector } from './helpers.js';

/*
 * The memtable's graph grown in the background (memtable-graph.ts): records
 * are searchable the moment an upsert resolves, with the graph answering for
 * the labels it holds and an exact scan for the rest, and a flush takes the
 * grown graph when no record of the memtable died.
 */

const DIM = 32;
const vec = (i: number): Float32Array => recordVector(i, DIM);
const truth = (live: Map<string, Float32Array>, q: Float32Array): string[] => exactNearest(live, q, 10);

/**
 * The collection's memtable graph (internal state, read by the test only).
 * Only vectorseal's own HNSW addon grows one (it searches beside a batch);
 * on the hnswlib-node fallback (CI runs test/store on it too) there is none,
 * the memtable is scanned until its flush builds the graph, and the same
 * records must be found, the same recall reached and the same store reopen.
 */
const native = graphBackend() === 'native';
function grownOf(col: Collection): MemtableGraph | undefined {
  const g = (col as unknown as { s: { memtable: { grown?: MemtableGraph; size: number } } }).s.memtable.grown;
  expect(g !== undefined, 'a memtable grows a graph exactly when the native addon is in use').toBe(native);
  return g;
}
const memtableSize = (col: Collection): number => (col as unknown as { s: { memtable: { size: number } } }).s.memtable.size;

describe('memtable graph grown in the background', () => {
  it('every record is searchable at once, while batches run and after; a flush takes the graph only when no record died', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const col = await store.createCollection('c', { dim: DIM });
    const live = new Map<string, Float32Array>();
    let recallSum = 0;
    let recallN = 0;
    const checkRecall = (q: Float32Array): void => {
      const want = new Set(truth(live, q));
      const got = col.search(q, 10).map((h) => h.id);
      recallSum += got.filter((id) => want.has(id)).length / want.size;
      recallN++;
    };
    let sawSplit = false;
    for (let at = 0; at < 6000; at += 250) {
      const batch = [];
      for (let i = at; i < at + 250; i++) batch.push({ id: `r${i}`, vector: vec(i) });
      await col.upsert(batch);
      for (const r of batch) live.set(r.id, r.vector);
      const g = grownOf(col);
      // The graph answers for a prefix, the scan for the rest: both halves must be found.
      if (g && g.indexed > 0 && g.indexed < memtableSize(col)) sawSplit = true;
      for (const i of [0, 125, 249, at > 0 ? -at : 0]) {
        const id = `r${Math.abs(at + i)}`;
        expect(col.search(live.get(id) as Float32Array, 1)[0]?.id, id).toBe(id);
      }
      checkRecall(vec(100_000 + at));
      if (at === 2000 && g) {
        // A batch has finished: the next upserts land beyond the graph's prefix.
        await g.idle();
        expect(g.indexed).toBeGreaterThanOrEqual(GROW_MIN);
      }
      if (at === 3000) {
        // A superseded and a deleted record: neither is answered by the graph any more.
        await col.upsert({ id: 'r10', vector: vec(900_000) });
        live.set('r10', vec(900_000));
        await col.delete(['r20']);
        live.delete('r20');
      }
      if (at >= 3000) {
        expect(col.search(vec(10), 5).map((h) => h.id)).not.toContain('r10');
        expect(col.search(vec(20), 5).map((h) => h.id)).not.toContain('r20');
      }
    }
    expect(sawSplit).toBe(native);
    await col.waitForIndex();
    expect(grownOf(col)?.indexed ?? memtableSize(col)).toBe(memtableSize(col));
    for (let q = 0; q < 20; q++) checkRecall(vec(200_000 + q));
    expect(recallSum / recallN).toBeGreaterThanOrEqual(0.95);
    // Two labels died in this memtable: the flush builds its graph.
    await col.flush();
    expect(col.stats().lastFlush?.grownGraph).toBe(false);

    // A second memtable, nothing dies: the flush takes the grown graph.
    for (let at = 6000; at < 9000; at += 500) {
      const batch = [];
      for (let i = at; i < at + 500; i++) batch.push({ id: `r${i}`, vector: vec(i) });
      await col.upsert(batch);
      for (const r of batch) live.set(r.id, r.vector);
    }
    await col.flush();
    expect(col.stats().lastFlush?.grownGraph).toBe(native);
    await store.close();

    const again = await openTestStore(d);
    const c2 = again.collection('c');
    expect(c2.count).toBe(live.size);
    for (const i of [0, 10, 2999, 6000, 7777, 8999]) {
      const id = `r${i}`;
      expect(c2.search(live.get(id) as Float32Array, 1)[0]?.id, id).toBe(id);
    }
    recallSum = 0;
    recallN = 0;
    for (let q = 0; q < 20; q++) {
      const want = new Set(truth(live, vec(300_000 + q)));
      recallSum += c2.search(vec(300_000 + q), 10).filter((h) => want.has(h.id)).length / 10;
      recallN++;
    }
    expect(recallSum / recallN).toBeGreaterThanOrEqual(0.95);
  });

  it('a memtable below the batch size grows no graph and is built at flush', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const col = await store.createCollection('c', { dim: DIM });
    const batch = [];
    for (let i = 0; i < GROW_MIN - 1; i++) batch.push({ id: `r${i}`, vector: vec(i) });
    await col.upsert(batch);
    await col.waitForIndex();
    expect(grownOf(col)?.indexed ?? 0).toBe(0);
    expect(col.search(vec(5), 1)[0]?.id).toBe('r5');
    await col.flush();
    expect(col.stats().lastFlush?.grownGraph).toBe(false);
    expect(col.search(vec(5), 1)[0]?.id).toBe('r5');
  });
});
