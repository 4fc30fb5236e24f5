import { describe, expect, it } from 'vitest';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

describe('search with a where predicate', () => {
  it('applies the predicate (on metadata and id) inside the search, with the filter, across memtable and segments', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir });
    const c = await store.createCollection('c', { dim: 8 });
    const vectors = randomVectors(300, 8, 7);
    await c.upsert(
      vectors.slice(0, 200).map((vector, i) => ({ id: `r${i}`, vector, metadata: { n: i, tags: i % 3 === 0 ? ['x'] : ['y'] } })),
    );
    await c.flush();
    await c.upsert(
      vectors
        .slice(200)
        .map((vector, i) => ({ id: `r${200 + i}`, vector, metadata: { n: 200 + i, tags: (200 + i) % 3 === 0 ? ['x'] : ['y'] } })),
    );
    const q = vectors[5] as Float32Array;
    const where = (m: Record<string, unknown> | undefined, id: string) => (m?.['tags'] as string[]).includes('x') && id !== 'r6';
    const hits = c.search(q, 300, { where, filter: { n: { $lt: 250 } } });
    const expected = Array.from({ length: 250 }, (_, i) => i)
      .filter((i) => i % 3 === 0 && i !== 6)
      .map((i) => `r${i}`);
    expect(hits.map((h) => h.id).sort()).toEqual(expected.sort());
    // The nearest first, as without a predicate.
    const all = c.search(q, 300).filter((h) => where(h.metadata, h.id) && (h.metadata?.['n'] as number) < 250);
    expect(hits.map((h) => h.id)).toEqual(all.map((h) => h.id));
  });

  it('an error thrown by the predicate ends the search with that error; a non-function is a typed error', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir });
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert(randomVectors(50, 4).map((vector, i) => ({ id: `r${i}`, vector })));
    let calls = 0;
    const boom = new RangeError('from the predicate');
    expect(() =>
      c.search([0, 0, 0, 0], 10, {
        where: () => {
          calls += 1;
          throw boom;
        },
      }),
    ).toThrow(boom);
    // The first error stops the predicate from being called again.
    expect(calls).toBe(1);
    expect(() => c.search([0, 0, 0, 0], 10, { where: 'x' as never })).toThrow(expect.objectContaining({ code: 'VS_INVALID_ARGUMENT' }));
    // A predicate returning something other than true refuses the record.
    expect(c.search([0, 0, 0, 0], 10, { where: () => 1 as never })).toEqual([]);
  });
});
