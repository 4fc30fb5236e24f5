import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  ClosedError,
  InvalidArgumentError,
  LimitExceededError,
  NotFoundError,
  StoreLockedError,
  WrongKeyError,
} from '../../src/errors.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { openStore } from '../../src/store/index.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('typed errors leave the store intact', () => {
  it('rejects bad batches whole, with the stored data unchanged', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 4 });
    const v = randomVectors(3, 4);
    await col.upsert([{ id: 'a', vector: v[0]!, metadata: { x: 1 } }]);
    const good = { id: 'b', vector: v[1]! };
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    const cases: [string, unknown, new (...a: never[]) => Error][] = [
      ['wrong dimension', [good, { id: 'c', vector: [1, 2, 3] }], InvalidArgumentError],
      ['NaN', [good, { id: 'c', vector: [1, Number.NaN, 3, 4] }], InvalidArgumentError],
      ['Infinity', [good, { id: 'c', vector: [1, Number.POSITIVE_INFINITY, 3, 4] }], InvalidArgumentError],
      ['float32 overflow', [good, { id: 'c', vector: [1, 1e300, 3, 4] }], InvalidArgumentError],
      ['non-array vector', [good, { id: 'c', vector: '1,2,3,4' }], InvalidArgumentError],
      ['non-number component', [good, { id: 'c', vector: [1, '2', 3, 4] }], InvalidArgumentError],
      ['empty id', [good, { id: '', vector: v[2]! }], InvalidArgumentError],
      ['huge id', [good, { id: 'x'.repeat(513), vector: v[2]! }], InvalidArgumentError],
      ['non-string id', [good, { id: 7, vector: v[2]! }], InvalidArgumentError],
      ['duplicate ids', [good, { id: 'b', vector: v[2]! }], InvalidArgumentError],
      ['oversized metadata', [good, { id: 'c', vector: v[2]!, metadata: { blob: 'x'.repeat(70_000) } }], LimitExceededError],
      ['function in metadata', [good, { id: 'c', vector: v[2]!, metadata: { f: () => 1 } }], InvalidArgumentError],
      ['symbol in metadata', [good, { id: 'c', vector: v[2]!, metadata: { s: Symbol('x') } }], InvalidArgumentError],
      ['cyclic metadata', [good, { id: 'c', vector: v[2]!, metadata: cyclic }], InvalidArgumentError],
      ['class instance metadata', [good, { id: 'c', vector: v[2]!, metadata: new Map() }], InvalidArgumentError],
      ['array metadata', [good, { id: 'c', vector: v[2]!, metadata: [1] }], InvalidArgumentError],
    ];
    for (const [what, batch, type] of cases) {
      await expect(col.upsert(batch as never), what).rejects.toBeInstanceOf(type);
      expect(col.get('b'), `${what}: nothing applied`).toBeUndefined();
    }
    const msg = await col.upsert([{ id: 'secret-id-zz', vector: [1, Number.NaN, 3, 4] }]).catch((e: Error) => e.message);
    expect(msg).not.toContain('secret-id-zz');
    expect(() => col.search([1, 2, 3], 1)).toThrow(InvalidArgumentError);
    expect(() => col.search(v[0]!, 0)).toThrow(InvalidArgumentError);
    expect(() => col.search(v[0]!, 1, { filter: { x: { $bogus: 1 } } })).toThrow(InvalidArgumentError);
    expect(() => store.collection('nope')).toThrow(NotFoundError);
    await expect(store.dropCollection('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.createCollection('c', { dim: 4 })).rejects.toBeInstanceOf(AlreadyExistsError);
    await expect(store.createCollection('bad name/..', { dim: 4 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.createCollection('d', { dim: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.createCollection('d', { dim: 4, space: 'hamming' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(col.count).toBe(1);
    await store.close({ flush: false });
    expect(() => col.get('a')).toThrow(ClosedError);
    const again = await openTestStore(d);
    expect(again.collection('c').count).toBe(1);
    expect(again.collection('c').get('a')?.metadata).toEqual({ x: 1 });
    expect(again.listCollections().map((c) => c.name)).toEqual(['c']);
  });

  it('refuses to open a missing store without create', async () => {
    const d = storeDirs();
    await expect(openStore({ dir: d.dir })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('reports a wrong master key as WrongKeyError, and the right key still opens everything', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await (await store.createCollection('c', { dim: 4 })).upsert({ id: 'a', vector: [1, 2, 3, 4] });
    const keyId = `store-${store.storeId}`;
    await store.close();
    const otherKeys = join(d.root, 'other-keys');
    await LocalKekProvider.init({ keyId, keyDir: otherKeys });
    await expect(openStore({ dir: d.dir, keys: { provider: 'local', keyDir: otherKeys } })).rejects.toBeInstanceOf(WrongKeyError);
    const ok = await openTestStore(d);
    expect(ok.collection('c').get('a')).toBeDefined();
  });
});

describe('one writer per store', () => {
  it('a second process gets StoreLockedError while the first holds the store, and opens once it is gone', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await store.createCollection('c', { dim: 4 });
    await store.close();
    const holder = spawn(process.execPath, [join(here, 'lock-child.mjs'), d.dir, d.keyDir, 'hold'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    try {
      const second = spawnSync(process.execPath, [join(here, 'lock-child.mjs'), d.dir, d.keyDir], { encoding: 'utf8' });
      expect(second.status).toBe(3);
      expect(second.stdout.trim()).toBe('VS_STORE_LOCKED');
      await expect(openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir } })).rejects.toBeInstanceOf(StoreLockedError);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('close', r));
    }
    // The holder died without releasing: its lock is stale and is taken over.
    await fs.access(join(d.dir, 'LOCK'));
    const third = spawnSync(process.execPath, [join(here, 'lock-child.mjs'), d.dir, d.keyDir], { encoding: 'utf8' });
    expect(third.status).toBe(0);
    const reopened = await openTestStore(d);
    expect(reopened.listCollections()).toHaveLength(1);
  });
});
