import { describe, expect, it } from 'vitest';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

describe('store round trips', () => {
  it('upserts, gets, searches, deletes, flushes and reopens', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('docs', { dim: 8, space: 'l2' });
    const vecs = randomVectors(300, 8, 7);
    await col.upsert(vecs.slice(0, 200).map((v, i) => ({ id: `r${i}`, vector: v, metadata: { i, group: i % 3 === 0 ? 'a' : 'b' } })));
    expect(col.count).toBe(200);
    expect(col.get('r5')?.metadata).toEqual({ i: 5, group: 'b' });
    expect(Array.from(col.get('r5')!.vector)).toEqual(Array.from(vecs[5]!));
    const hit = col.search(vecs[10]!, 3);
    expect(hit[0]!.id).toBe('r10');
    expect(hit[0]!.score).toBe(0);
    await col.flush();
    await col.upsert(vecs.slice(200).map((v, i) => ({ id: `r${200 + i}`, vector: v })));
    await col.upsert({ id: 'r1', vector: vecs[250]!, metadata: { replaced: true } });
    expect(await col.delete(['r2', 'nope'])).toBe(1);
    const filtered = col.search(vecs[3]!, 5, { filter: { group: 'a' } });
    expect(filtered.every((h) => (h.metadata as { group: string }).group === 'a')).toBe(true);
    expect(col.search(vecs[2]!, 1)[0]!.id).not.toBe('r2');
    const before = col.search(vecs[42]!, 10);
    const stats = col.stats();
    expect(stats.count).toBe(299);
    await store.close({ flush: false });

    store = await openTestStore(d);
    const again = store.collection('docs');
    expect(again.count).toBe(299);
    expect(again.get('r2')).toBeUndefined();
    expect(again.get('r1')?.metadata).toEqual({ replaced: true });
    expect(again.search(vecs[42]!, 10)).toEqual(before);
    await again.flush();
    await again.compact();
    expect(again.stats().segments).toBe(1);
    expect(again.count).toBe(299);
    expect(again.get('r2')).toBeUndefined();
    await store.close();
    store = await openTestStore(d);
    expect(store.collection('docs').count).toBe(299);
    expect(store.collection('docs').get('r1')?.metadata).toEqual({ replaced: true });
    expect(store.listCollections().map((c) => c.name)).toEqual(['docs']);
  });
});
