import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/index.js';
import { runChild } from './child.js';
import { openTestStore, storeDirs } from '../helpers/store.js';

const here = dirname(fileURLToPath(import.meta.url));

function vectorOf(i: number): number[] {
  return Array.from({ length: 8 }, (_, j) => i + j / 8);
}

/** Checks that every acknowledged operation is reflected in the reopened collection. */
export function checkAcked(store: Store, acks: string[]): void {
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
      expect(Array.from(r!.vector)).toEqual(vectorOf(i));
      expect(r!.metadata).toEqual({ i, tag: `secret-${i}` });
      expect(col.search(vectorOf(i), 1)[0]!.id).toBe(`id-${i}`);
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
  'graph:started',
  'graph:built#2',
  // The fifth graph is the background compaction's.
  'graph:started#5',
  'graph:built#5',
  'compact:built',
  'compact:vectors-written',
  'compact:index-written',
  'manifest:committed#6',
  'compact:committed',
  'compact:done',
];

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
    expect(store.collection('c').count).toBe(70 - 4);
    await store.collection('c').upsert({ id: 'after', vector: vectorOf(999) });
    await store.collection('c').flush();
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
