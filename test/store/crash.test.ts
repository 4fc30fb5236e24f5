import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { graphBackend } from '../../src/hnsw/index.js';
import type { Store } from '../../src/store/index.js';
import { runChild } from './child.js';
import { openTestStore, storeDirs } from '../helpers/store.js';

const here = dirname(fileURLToPath(import.meta.url));

function vectorOf(i: number): number[] {
  return Array.from({ length: 8 }, (_, j) => i + j / 8);
}

/** Vector of record i in the child's 'grow' sequence (writer-child.mjs spreadOf). */
function spreadOf(i: number): number[] {
  return Array.from({ length: 8 }, (_, j) => Math.fround(Math.sin((i + 1) * (j + 1) * 12.9898) * 43.758));
}

/** Checks that every acknowledged operation is reflected in the reopened collection. */
export function checkAcked(store: Store, acks: string[], vector: (i: number) => number[] = vectorOf): void {
  const col = store.collection('c');
  const expected = new Map<number, boolean>();
  for (const a of acks) {
    const [op, n] = a.split(' ');
    if (op === 'u') expected.set(Number(n), true);
    if (op === 'd') expected.set(Number(n), false);
  }
  for (const [i, present] of expected) {
    const r = col.get(`id-${i}`);
    if (present) {
      expect(r, `acknowledged id-${i}`).toBeDefined();
      expect(Array.from(r!.vector)).toEqual(vector(i));
      expect(r!.metadata).toEqual({ i, tag: `secret-${i}` });
      expect(col.search(vector(i), 1)[0]!.id).toBe(`id-${i}`);
    } else {
      expect(r, `deleted id-${i}`).toBeUndefined();
    }
  }
}

const POINTS = [
  'wal:written#3',
  'wal:synced#3',
  'flush:wal-created',
  'flush:frozen',
  'flush:vectors-written',
  'flush:metadata-written',
  'index:staged',
  'flush:index-written',
  'flush:tombstones-written',
  'manifest:before-write#2',
  'manifest:committed#2',
  'flush:committed',
  'flush:wal-rotated',
  'flush:done',
  'flush:committed#2',
  // The graph build of a flush, on its worker thread (flushes 1 and 4).
  'graph:started',
  'graph:built#2',
  'flush:built',
  'flush:built#4',
];

/**
 * Every crash point of the two compactions the child runs after its fourth
 * flush: the background one (the fifth graph, merging the two newest groups,
 * whose tombstone it carries) and the full one (the sixth graph, every group
 * into one). The occurrence numbers of manifest, state and atomic writes
 * count from the child's start (the collection's creation and four flushes
 * come first).
 */
const COMPACTION_POINTS = [
  // Background: graph build on the worker, group files, manifest announced in STATE, committed, WAL rotated, old files retired.
  'graph:started#5',
  'graph:built#5',
  'compact:built',
  'compact:vectors-written',
  'compact:metadata-written',
  'index:staged#5',
  'compact:index-written',
  'compact:tombstones-written',
  'manifest:before-write#6',
  'state:before-write#13',
  'atomic:temp-written#17',
  'atomic:renamed#17',
  'state:written#13',
  'manifest:committed#6',
  'compact:committed',
  'compact:done',
  // Full compaction (Collection.compact), the same steps without tombstones.
  'graph:started#6',
  'graph:built#6',
  'compact:built#2',
  'compact:vectors-written#2',
  'compact:metadata-written#2',
  'index:staged#6',
  'compact:index-written#2',
  'manifest:before-write#7',
  'state:before-write#14',
  'atomic:temp-written#18',
  'atomic:renamed#18',
  'state:written#14',
  'manifest:committed#7',
  'compact:committed#2',
  'compact:done#2',
];

/**
 * The memtable's background graph (memtable-graph.ts) in the child's 'grow'
 * sequence: three memtables of 2,550, 1,500 and 1,200 records, so at least
 * one background batch in each; the first flush takes its grown graph and
 * catches it up on its last 50 records (added after waitForIndex, too few
 * for a batch), the second (a record died) drops it after its batch ends.
 */
const GROW_POINTS = ['memgraph:batch', 'memgraph:added', 'memgraph:catch-up', 'memgraph:batch#2', 'memgraph:added#2', 'memgraph:batch#3'];

describe('crash recovery (child killed with SIGKILL)', () => {
  beforeAll(async () => {
    // The child runs the built package: run `npm run build` first.
    await fs.access(join(here, '../../dist/index.js'));
  });

  it('keeps every acknowledged write that was only in the WAL', async () => {
    const d = storeDirs();
    const run = await runChild([d.dir, d.keyDir, 'sequence']);
    expect(run.signal).toBe('SIGKILL');
    expect(run.acks.at(-1)).toBe('end');
    const store = await openTestStore(d, { maxSegments: 3 });
    checkAcked(store, run.acks);
    expect(store.collection('c').count).toBe(70 - 5);
    await store.collection('c').upsert({ id: 'after', vector: vectorOf(999) });
    await store.collection('c').flush();
  });

  it.each(COMPACTION_POINTS)('killed in a compaction at %s: reopens with every acknowledged write', async (point) => {
    const d = storeDirs();
    const run = await runChild([d.dir, d.keyDir, 'sequence'], point);
    // Reached, and inside the compactions: after the fourth flush began, before the full compaction was acknowledged.
    expect(run.signal, run.stderr).toBe('SIGKILL');
    expect(run.acks.filter((a) => a === 'f').length).toBeGreaterThanOrEqual(3);
    expect(run.acks).not.toContain('c');
    const store = await openTestStore(d, { maxSegments: 3 });
    checkAcked(store, run.acks);
    expect(store.collection('c').count).toBe(60 - 4);
    await store.collection('c').upsert({ id: 'after', vector: vectorOf(999) });
    await store.collection('c').compact();
    expect(store.collection('c').count).toBe(60 - 4 + 1);
  });

  it.each(GROW_POINTS)('killed in a background graph batch at %s: reopens with every acknowledged write', async (point) => {
    const d = storeDirs();
    const run = await runChild([d.dir, d.keyDir, 'grow'], point);
    expect(run.signal, run.stderr).toBe('SIGKILL');
    // Killed at the point, not at the end of the sequence. On the hnswlib-node fallback (CI runs test/store on
    // it too) no memtable grows a graph, so the point is never reached: the child runs its whole sequence, kills
    // itself after 'end', and its store must reopen the same.
    expect(run.acks.at(-1) === 'end').toBe(graphBackend() !== 'native');
    const store = await openTestStore(d);
    checkAcked(store, run.acks, spreadOf);
    const col = store.collection('c');
    await col.upsert({ id: 'after', vector: vectorOf(9999) });
    await col.flush();
    expect(col.get('after')).toBeDefined();
  });

  it.each(POINTS)('killed at %s: reopens with every acknowledged write', async (point) => {
    const d = storeDirs();
    const run = await runChild([d.dir, d.keyDir, 'sequence'], point);
    expect(run.signal, run.stderr).toBe('SIGKILL');
    expect(run.acks.at(-1)).not.toBe('end');
    let store = await openTestStore(d, { maxSegments: 3 });
    checkAcked(store, run.acks);
    // Still writable, flushable and compactable; and it reopens again.
    await store.collection('c').upsert({ id: 'after', vector: vectorOf(999) });
    await store.collection('c').compact();
    await store.close();
    store = await openTestStore(d);
    checkAcked(store, run.acks);
    expect(store.collection('c').get('after')).toBeDefined();
  });
});
