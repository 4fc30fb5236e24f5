import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

describe('automatic flush', () => {
  it('flushes in the background once the unflushed records pass the threshold, losing nothing', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir, autoFlushRecords: 100 });
    const c = await store.createCollection('c', { dim: 8 });
    const vectors = randomVectors(250, 8, 5);
    for (let i = 0; i < 250; i += 50) {
      await c.upsert(vectors.slice(i, i + 50).map((v, j) => ({ id: `r${i + j}`, vector: v, metadata: { i: i + j } })));
    }
    // Let a flush started by the last batch finish (it runs in the collection's exclusive section).
    await c.compact();
    const stats = c.stats();
    expect(stats.count).toBe(250);
    expect(stats.segments).toBeGreaterThanOrEqual(1);
    expect(stats.unflushed).toBeLessThan(100);
    await store.close({ flush: false });
    const again = await openTestStore(d, { stagingDir: d.stagingDir });
    const reopened = again.collection('c');
    expect(reopened.count).toBe(250);
    for (const i of [0, 99, 100, 249]) expect(reopened.get(`r${i}`)?.metadata).toEqual({ i });
  });

  it('stays off with 0 and refuses a bad threshold', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir, autoFlushRecords: 0 });
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert(randomVectors(300, 4, 1).map((v, i) => ({ id: `r${i}`, vector: v })));
    expect(c.stats().unflushed).toBe(300);
    expect(c.stats().segments).toBe(0);
    await expect(openStore({ dir: d.dir, autoFlushRecords: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
