import { describe, expect, expectTypeOf, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import type { Collection, SearchResult, Store, StoredRecord } from '../../src/store/index.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

interface Doc {
  lang: 'en' | 'fr';
  year: number;
  tag?: string;
  nested?: { x: number };
}

async function reopen(store: Store, d: TestStoreDirs, flush = true): Promise<Store> {
  if (flush) await store.flush();
  await store.close({ flush: false });
  return openTestStore(d);
}

async function filled(d: TestStoreDirs, n = 40): Promise<{ store: Store; col: Collection<Doc>; vectors: Float32Array[] }> {
  const store = await openTestStore(d);
  const col = await store.createCollection<Doc>('docs', { dim: 8 });
  const vectors = randomVectors(n, 8, 3);
  await col.upsert(
    vectors.map((vector, i) => ({
      id: `d-${String(i).padStart(3, '0')}`,
      vector,
      metadata: { lang: i % 2 ? 'en' : 'fr', year: 2000 + i, ...(i % 5 === 0 ? { tag: 'five' } : {}) },
    })),
  );
  return { store, col, vectors };
}

describe('the query API', () => {
  it('searchMany: one result list per query, equal to single searches', async () => {
    const { col, vectors } = await filled(storeDirs());
    const queries = [vectors[0]!, vectors[7]!, Array.from(vectors[9]!)];
    const many = col.searchMany(queries, 3, { filter: { lang: 'en' } });
    expect(many).toHaveLength(3);
    queries.forEach((q, i) => expect(many[i]).toEqual(col.search(q, 3, { filter: { lang: 'en' } })));
    expect(many[1]![0]!.id).toBe('d-007');
    expect(() => col.searchMany('nope' as never)).toThrow(InvalidArgumentError);
    expect(() => col.searchMany([vectors[0]!, [1, 2]])).toThrow(InvalidArgumentError);
  });

  it('getMany: records in order, undefined for missing ids', async () => {
    const d = storeDirs();
    const { store } = await filled(d);
    const again = await reopen(store, d);
    const got = again.collection<Doc>('docs').getMany(['d-003', 'missing', 'd-001']);
    expect(got.map((r) => r?.id)).toEqual(['d-003', undefined, 'd-001']);
    expect(got[0]!.metadata).toEqual({ lang: 'en', year: 2003 });
    expect(() => again.collection('docs').getMany(['ok', 7 as never])).toThrow(InvalidArgumentError);
  });

  it('countWhere and deleteWhere, durable across a reopen', async () => {
    const d = storeDirs();
    const { store, col } = await filled(d);
    expect(col.countWhere()).toBe(40);
    expect(col.countWhere({ lang: 'en' })).toBe(20);
    expect(col.countWhere({ year: { $gte: 2030 } })).toBe(10);
    expect(await col.deleteWhere({ $and: [{ lang: 'fr' }, { year: { $lt: 2010 } }] })).toBe(5);
    expect(await col.deleteWhere({ lang: 'de' as never })).toBe(0);
    await expect(col.deleteWhere(undefined as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    const again = await reopen(store, d, false);
    const c = again.collection<Doc>('docs');
    expect(c.count).toBe(35);
    expect(c.countWhere({ lang: 'fr' })).toBe(15);
    expect(c.get('d-000')).toBeUndefined();
    expect(c.get('d-010')).toBeDefined();
  });

  it('updateMetadata keeps the vector, survives the WAL and a flush, and loses no concurrent upsert', async () => {
    const d = storeDirs();
    const { store, col, vectors } = await filled(d);
    await col.flush();
    const newer = randomVectors(1, 8, 99)[0]!;
    // Submitted in this order: the update must apply to the vector the upsert wrote.
    const upsert = col.upsert({ id: 'd-002', vector: newer, metadata: { lang: 'fr', year: 1 } });
    const update = col.updateMetadata([
      { id: 'd-002', metadata: { lang: 'en', year: 2 } },
      { id: 'd-004', metadata: null },
      { id: 'missing', metadata: { lang: 'en', year: 3 } },
    ]);
    await upsert;
    expect(await update).toBe(2);
    const check = (s: Store, where: string): void => {
      const c = s.collection<Doc>('docs');
      expect(Array.from(c.get('d-002')!.vector), where).toEqual(Array.from(newer));
      expect(c.get('d-002')!.metadata, where).toEqual({ lang: 'en', year: 2 });
      expect(c.get('d-004')!.metadata, where).toBeUndefined();
      expect(Array.from(c.get('d-004')!.vector), where).toEqual(Array.from(vectors[4]!));
      expect(c.get('missing'), where).toBeUndefined();
      expect(c.search(newer, 1)[0]!.id, where).toBe('d-002');
    };
    check(store, 'in memory');
    let s = await reopen(store, d, false);
    check(s, 'replayed from the WAL');
    s = await reopen(s, d);
    check(s, 'from segments');
    await expect(s.collection('docs').updateMetadata({ id: 'd-001' } as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      s.collection('docs').updateMetadata([
        { id: 'a', metadata: {} },
        { id: 'a', metadata: {} },
      ]),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('records() iterates every record with metadata in id order, page by page; list() pages by cursor', async () => {
    const { col } = await filled(storeDirs(), 25);
    const seen: string[] = [];
    for await (const r of col.records({ pageSize: 4 })) {
      seen.push(r.id);
      expect(r.metadata?.year).toBe(2000 + Number(r.id.slice(2)));
      expect(r.vector).toBeInstanceOf(Float32Array);
      // A deletion during the iteration: that record is skipped when its page comes.
      if (r.id === 'd-005') await col.delete('d-020');
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `d-${String(i).padStart(3, '0')}`).filter((id) => id !== 'd-020'));
    const en: string[] = [];
    for await (const r of col.records({ filter: { lang: 'en' }, pageSize: 3 })) en.push(r.id);
    expect(en).toHaveLength(12);

    const pages: string[][] = [];
    let after: string | undefined;
    do {
      const page = col.list({ pageSize: 10, ...(after === undefined ? {} : { after }) });
      pages.push(page.records.map((r) => r.id));
      after = page.next;
    } while (after !== undefined);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 4]);
    expect(pages.flat()).toEqual(seen.filter((id) => id !== 'd-020'));
    expect(() => col.list({ pageSize: 0 })).toThrow(InvalidArgumentError);
  });

  it('getOrCreateCollection returns the existing collection, creates a missing one, refuses a mismatch', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const a = await store.getOrCreateCollection<Doc>('a', { dim: 4, space: 'cosine' });
    expect(await store.getOrCreateCollection('a', { dim: 4, space: 'cosine' })).toBe(a);
    await expect(store.getOrCreateCollection('a', { dim: 5, space: 'cosine' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.getOrCreateCollection('a', { dim: 4 })).rejects.toBeInstanceOf(InvalidArgumentError);
    const [x, y] = await Promise.all([store.getOrCreateCollection('b', { dim: 2 }), store.getOrCreateCollection('b', { dim: 2 })]);
    expect(x).toBe(y);
    const again = await reopen(store, d);
    expect(again.listCollections().map((c) => c.name)).toEqual(['a', 'b']);
  });

  it('$and, $or and $not, nested, own properties only', async () => {
    const d = storeDirs();
    const { store } = await filled(d, 20);
    const again = await reopen(store, d);
    const col = again.collection<Doc>('docs');
    const ids = (f: NonNullable<Parameters<typeof col.countWhere>[0]>): string[] => col.list({ filter: f }).records.map((r) => r.id);
    expect(ids({ $or: [{ year: 2001 }, { year: 2002 }] })).toEqual(['d-001', 'd-002']);
    expect(ids({ $not: { lang: 'en' }, year: { $lt: 2005 } })).toEqual(['d-000', 'd-002', 'd-004']);
    expect(ids({ $and: [{ $or: [{ tag: 'five' }, { year: 2003 }] }, { $not: { year: 2015 } }] })).toEqual([
      'd-000',
      'd-003',
      'd-005',
      'd-010',
    ]);
    expect(ids({ $not: { tag: { $exists: true } }, $or: [{ year: 2001 }] })).toEqual(['d-001']);
    expect(() => col.countWhere({ $or: [] })).toThrow(InvalidArgumentError);
    expect(() => col.countWhere({ $nor: [] } as never)).toThrow(InvalidArgumentError);
    expect(() => col.countWhere({ $not: 'x' } as never)).toThrow(InvalidArgumentError);
  });

  it('createCollection<M>() types filters, records and results (checked by the type check)', async () => {
    const store = await openTestStore(storeDirs());
    const col = await store.createCollection<Doc>('typed', { dim: 2 });
    await col.upsert({ id: 'a', vector: [1, 0], metadata: { lang: 'en', year: 2020 } });
    // @ts-expect-error a metadata field of the wrong type
    await col.upsert({ id: 'b', vector: [1, 0], metadata: { lang: 'de', year: 2020 } }).catch(() => undefined);
    // @ts-expect-error a filter value of the wrong type
    col.countWhere({ year: 'recent' });
    // @ts-expect-error an unknown field
    col.countWhere({ colour: 'red' });
    expect(col.countWhere({ $or: [{ lang: 'en' }, { year: { $gt: 2021 } }], 'nested.x': 1 })).toBe(0);
    expectTypeOf(col.search([1, 0], 1)).toEqualTypeOf<SearchResult<Doc>[]>();
    expectTypeOf(col.get('a')).toEqualTypeOf<StoredRecord<Doc> | undefined>();
    expectTypeOf(col.getMany(['a'])[0]!.metadata).toEqualTypeOf<Doc | undefined>();
    expect(col.search([1, 0], 1)[0]!.metadata?.year).toBe(2020);
    // Untyped collections keep the loose filter (and types never change what runs: 'b' was stored).
    const loose = store.collection('typed');
    expect(loose.countWhere({ anything: { $exists: false } })).toBe(2);
  });
});
