import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import type { Store } from '../../src/store/index.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Flushes, closes and reopens the store: what comes back was read from the segments. */
async function reopen(store: Store, d: TestStoreDirs, flush = true): Promise<Store> {
  if (flush) await store.flush();
  await store.close({ flush: false });
  return openTestStore(d);
}

async function expectInvalid(p: Promise<unknown> | (() => unknown), what: string): Promise<void> {
  if (typeof p === 'function') {
    expect(p, what).toThrow(InvalidArgumentError);
    return;
  }
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, what).toBeInstanceOf(InvalidArgumentError);
  expect((err as InvalidArgumentError).code).toBe('VS_INVALID_ARGUMENT');
}

describe('input that must never be changed silently', () => {
  it('refuses ids with a lone UTF-16 surrogate (they would collapse to U+FFFD), and the store still opens', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    await col.upsert({ id: 'ok', vector: [1, 0] });
    // Both would be stored as "\uFFFD": one record lost on reopen, and a flush would make the store fail to open.
    await expectInvalid(
      col.upsert([
        { id: '\ud800', vector: [0, 1] },
        { id: '\udc00', vector: [1, 1] },
      ]),
      'lone surrogates in a batch',
    );
    await expectInvalid(col.upsert({ id: 'a\udbff', vector: [0, 1] }), 'trailing lone high surrogate');
    await expectInvalid(col.delete('\udc00'), 'delete');
    await expectInvalid(() => col.get('\ud800'), 'get');
    // A well-formed pair is a valid id and round-trips exactly.
    await col.upsert({ id: 'emoji-\ud83d\ude00', vector: [0, 1] });
    store = await reopen(store, d);
    expect(store.collection('c').ids().sort()).toEqual(['emoji-\ud83d\ude00', 'ok']);
  });

  it('refuses lone surrogates in metadata keys and values, at any depth', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: { t: 'x\ud800' } }), 'value');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: { ['k\udc00']: 1 } }), 'key');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: { n: { deep: ['ok', '\udfff'] } } }), 'nested value');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: { n: { ['\ud800']: true } } }), 'nested key');
    expect(col.count).toBe(0);
    await col.upsert({ id: 'a', vector: [1, 0], metadata: { t: 'caf\u00e9 \ud83d\ude00' } });
    store = await reopen(store, d);
    expect(store.collection('c').get('a')?.metadata).toEqual({ t: 'caf\u00e9 \ud83d\ude00' });
  });

  it('stores an own "__proto__" key exactly, beside "__proto_", through the WAL, a flush and a compaction', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    const meta = JSON.parse('{"__proto__": {"polluted": true}, "__proto_": 2, "n": {"__proto__": 3}}') as Record<string, unknown>;
    expect(Object.hasOwn(meta, '__proto__')).toBe(true);
    await col.upsert({ id: 'a', vector: [1, 0], metadata: meta });
    const check = (s: Store, where: string): void => {
      const m = s.collection('c').get('a')?.metadata as Record<string, unknown>;
      expect(Object.getPrototypeOf(m), where).toBe(Object.prototype);
      expect(Object.keys(m), where).toEqual(['__proto__', '__proto_', 'n']);
      expect(Object.getOwnPropertyDescriptor(m, '__proto__')?.value, where).toEqual({ polluted: true });
      expect(m['__proto_'], where).toBe(2);
      expect(Object.getOwnPropertyDescriptor(m['n'], '__proto__')?.value, where).toBe(3);
      expect(({} as Record<string, unknown>)['polluted'], `${where}: no prototype pollution`).toBeUndefined();
      // The filter reaches the own key, never the prototype.
      expect(
        s
          .collection('c')
          .search([1, 0], 5, { filter: { '__proto__.polluted': true } })
          .map((h) => h.id),
        where,
      ).toEqual(['a']);
    };
    check(store, 'in memory');
    store = await reopen(store, d, false);
    check(store, 'replayed from the WAL');
    store = await reopen(store, d);
    check(store, 'read from a segment');
    await store.collection('c').upsert({ id: 'b', vector: [0, 1] });
    await store.collection('c').flush();
    await store.collection('c').compact();
    store = await reopen(store, d);
    check(store, 'after a compaction');
  });

  it('stores -0 exactly (msgpack would make it 0), in the WAL and in segments', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    await col.upsert({ id: 'a', vector: [1, 0], metadata: { z: -0, p: 0, list: [-0, 0, -1.5], o: { z: -0 } } });
    const check = (s: Store, where: string): void => {
      const m = s.collection('c').get('a')?.metadata as { z: number; p: number; list: number[]; o: { z: number } };
      expect(Object.is(m.z, -0), where).toBe(true);
      expect(Object.is(m.p, 0), where).toBe(true);
      expect(
        m.list.map((x) => Object.is(x, -0)),
        where,
      ).toEqual([true, false, false]);
      expect(Object.is(m.o.z, -0), where).toBe(true);
    };
    check(store, 'in memory');
    store = await reopen(store, d, false);
    check(store, 'replayed from the WAL');
    store = await reopen(store, d);
    check(store, 'read from a segment');
  });

  it('filters match own properties only: {constructor: {$exists: true}} matches nothing', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    await col.upsert([
      { id: 'a', vector: [1, 0], metadata: { lang: 'en', nested: { x: 1 } } },
      { id: 'b', vector: [0, 1], metadata: { constructor: 'own' } },
      { id: 'c', vector: [1, 1] },
    ]);
    const ids = (s: Store, filter: Record<string, unknown>): string[] =>
      s
        .collection('c')
        .search([1, 0], 10, { filter })
        .map((h) => h.id)
        .sort();
    for (const round of ['in memory', 'after a reopen']) {
      if (round !== 'in memory') store = await reopen(store, d);
      const s = store;
      expect(ids(s, { constructor: { $exists: true } })).toEqual(['b']);
      expect(ids(s, { toString: { $exists: true } })).toEqual([]);
      expect(ids(s, { hasOwnProperty: { $exists: false } }).length).toBe(3);
      expect(ids(s, { 'nested.constructor': { $exists: true } })).toEqual([]);
      expect(ids(s, { 'lang.length': 2 })).toEqual([]);
      expect(ids(s, { constructor: 'own' })).toEqual(['b']);
    }
  });

  it('a metadata getter (throwing or not), a Proxy that throws, or a record field that throws: a typed error, nothing stored', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 2 });
    const throwing = Object.defineProperty({}, 'x', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    const changing = Object.defineProperty({}, 'x', { enumerable: true, get: () => Math.random() });
    const hidden = Object.defineProperty({ a: 1 }, 'h', { value: 2, enumerable: false });
    const sparse = { list: [1, , 3] };
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    const badRecord = Object.defineProperty({ vector: [1, 0] }, 'id', {
      get() {
        throw new Error('id getter');
      },
    });
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: throwing }), 'throwing getter');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: { n: changing } }), 'nested getter');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: hidden }), 'non-enumerable property');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: sparse }), 'array hole');
    await expectInvalid(col.upsert({ id: 'a', vector: [1, 0], metadata: trap }), 'Proxy trap');
    await expectInvalid(col.upsert(badRecord as never), 'record getter');
    expect(col.count).toBe(0);
    await col.upsert({ id: 'a', vector: [1, 0], metadata: { x: 1 } });
    store = await reopen(store, d);
    expect(store.collection('c').get('a')?.metadata).toEqual({ x: 1 });
  });

  it('refuses a zero vector in a cosine collection (record and query); an l2 collection keeps it', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const cos = await store.createCollection('cos', { dim: 3, space: 'cosine' });
    const l2 = await store.createCollection('l2', { dim: 3 });
    await expectInvalid(cos.upsert({ id: 'z', vector: [0, 0, 0] }), 'zero record');
    await expectInvalid(cos.upsert({ id: 'z', vector: new Float32Array([0, -0, 0]) }), 'zero Float32Array record');
    await cos.upsert({ id: 'a', vector: [1, 0, 0] });
    await expectInvalid(() => cos.search([0, 0, 0], 1), 'zero query');
    await expectInvalid(() => cos.search(new Float32Array(3), 1), 'zero Float32Array query');
    await l2.upsert({ id: 'z', vector: [0, 0, 0] });
    store = await reopen(store, d);
    expect(store.collection('cos').ids()).toEqual(['a']);
    expect(Array.from(store.collection('l2').get('z')!.vector)).toEqual([0, 0, 0]);
  });
});

describe('several processes opening a free store at once', () => {
  it('each either opens it or gets VS_STORE_LOCKED, never a raw ENOENT', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await store.createCollection('c', { dim: 2 });
    await store.close();
    const outcomes: string[] = [];
    for (let round = 0; round < 6; round++) {
      const runs = Array.from(
        { length: 5 },
        () =>
          new Promise<string>((resolve) => {
            const p = spawn(process.execPath, [join(here, 'lock-child.mjs'), d.dir, d.keyDir], { stdio: ['ignore', 'pipe', 'pipe'] });
            let out = '';
            p.stdout.on('data', (b: Buffer) => (out += b.toString()));
            p.stderr.on('data', (b: Buffer) => (out += b.toString()));
            p.on('close', () => resolve(out.trim()));
          }),
      );
      outcomes.push(...(await Promise.all(runs)));
    }
    expect(outcomes.filter((o) => o !== 'opened' && o !== 'VS_STORE_LOCKED')).toEqual([]);
    expect(outcomes).toContain('opened');
    const again = await openTestStore(d);
    expect(again.listCollections()).toHaveLength(1);
  });
});

describe('a second openStore of one directory in the same process', () => {
  it('gets a clear StoreLockedError saying the store is open in this process, and opens once the first is closed', async () => {
    const d = storeDirs();
    const first = await openTestStore(d);
    const err = await openTestStore(d).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err?.code).toBe('VS_STORE_LOCKED');
    expect(err?.message).toContain('already open in this process');
    expect(err?.message).not.toContain(`process ${process.pid}`);
    await first.close();
    const again = await openTestStore(d);
    expect(again.listCollections()).toEqual([]);
  });
});
