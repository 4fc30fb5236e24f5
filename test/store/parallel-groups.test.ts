import { describe, expect, it } from 'vitest';
import { PARALLEL_WALK_MIN } from '../../src/store/collection-search.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { exactNearest, recordVector } from './helpers.js';

/*
 * An unfiltered search over two segment groups of PARALLEL_WALK_MIN records
 * or more walks both graphs at once (NativeGraph.searchEach, the second on
 * the addon's helper thread): every record of either group is found, the
 * merge ranks across groups, and a superseded record is never answered. On
 * the hnswlib-node fallback (CI runs test/store on it too) the same search
 * walks the groups one by one and must answer the same way.
 */

const DIM = 16;
const vec = (i: number): Float32Array => recordVector(i, DIM);

describe('search over several large segment groups at once', () => {
  it('finds every record of both groups, ranks across them, and never answers a superseded record', { timeout: 120_000 }, async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const col = await store.createCollection('c', { dim: DIM, M: 12, efConstruction: 64 });
    const n = PARALLEL_WALK_MIN + 500;
    const live = new Map<string, Float32Array>();
    for (let group = 0; group < 2; group++) {
      for (let at = group * n; at < (group + 1) * n; at += 2000) {
        const batch = [];
        for (let i = at; i < Math.min((group + 1) * n, at + 2000); i++) batch.push({ id: `r${i}`, vector: vec(i) });
        await col.upsert(batch);
        for (const r of batch) live.set(r.id, r.vector);
      }
      await col.flush();
    }
    // r5 (first group) is superseded by a record in the memtable, far from where it was.
    await col.upsert({ id: 'r5', vector: vec(10_000_000) });
    live.set('r5', vec(10_000_000));
    expect(col.stats().segments).toBe(2);
    for (const i of [0, 1, 777, n - 1, n, n + 1, 2 * n - 1]) {
      expect(col.search(vec(i), 1)[0]?.id, `r${i}`).toBe(`r${i}`);
    }
    expect(col.search(vec(5), 3).map((h) => h.id)).not.toContain('r5');
    expect(col.search(vec(10_000_000), 1)[0]?.id).toBe('r5');
    let recall = 0;
    const Q = 30;
    for (let q = 0; q < Q; q++) {
      const query = vec(50_000_000 + q);
      const want = new Set(exactNearest(live, query, 10));
      const got = col.search(query, 10);
      // Closest first, across both groups.
      for (let j = 1; j < got.length; j++) expect((got[j]?.score as number) >= (got[j - 1]?.score as number)).toBe(true);
      recall += got.filter((h) => want.has(h.id)).length / 10;
    }
    expect(recall / Q).toBeGreaterThanOrEqual(0.95);
  });
});
