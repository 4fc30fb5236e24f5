import { describe, expect, it } from 'vitest';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

describe('readers during a flush', () => {
  it('searches and gets issued while a flush and a compaction run see every record exactly once', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { durability: 'none' });
    const col = await store.createCollection('c', { dim: 16 });
    const vecs = randomVectors(6000, 16, 5);
    await col.upsert(vecs.slice(0, 3000).map((v, i) => ({ id: `r${i}`, vector: v })));
    await col.flush();
    await col.upsert(vecs.slice(3000).map((v, i) => ({ id: `r${3000 + i}`, vector: v })));
    const expected = col.search(vecs[4000]!, 20);
    let checks = 0;
    let running = true;
    const reader = (async () => {
      while (running) {
        const res = col.search(vecs[4000]!, 20);
        expect(new Set(res.map((r) => r.id)).size).toBe(res.length);
        expect(res.map((r) => r.id)).toEqual(expected.map((r) => r.id));
        expect(col.get('r4321')).toBeDefined();
        expect(col.count).toBeGreaterThanOrEqual(6000);
        checks++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    // Writes during the flush go to the new memtable and stay visible.
    const flushing = col.flush();
    await col.upsert({ id: 'during', vector: vecs[1]! });
    await flushing;
    await col.compact();
    running = false;
    await reader;
    expect(checks).toBeGreaterThan(1);
    expect(col.get('during')).toBeDefined();
    expect(col.count).toBe(6001);
  });
});
