import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptDataError, RollbackError, openStore, type Store } from '../../src/index.js';
import { repoRoot } from './harness/paths.js';

/**
 * A CATALOG deleted or replaced by an older copy is refused with a typed
 * error naming CATALOG; a createCollection or dropCollection killed at any
 * step is finished or undone on the next open, never mistaken for tampering.
 */

const root = mkdtempSync(join(tmpdir(), 'vs-rel-catalog-'));
const keyDir = join(root, 'keys');
const template = join(root, 'template');
const CHILD = join(repoRoot(), 'test', 'reliability', 'harness', 'catalog-child.mjs');
let catalogWithA: Buffer;

const records = Array.from({ length: 50 }, (_, i) => ({ id: `r${i}`, vector: [i, i / 2, -i, 1] }));

beforeAll(async () => {
  const store = await openStore({ dir: template, create: true, keys: { provider: 'local', keyDir } });
  const a = await store.createCollection('a', { dim: 4 });
  await a.upsert(records);
  await a.flush();
  catalogWithA = await fs.readFile(join(template, 'CATALOG'));
  const b = await store.createCollection('b', { dim: 4 });
  await b.upsert(records.slice(0, 10));
  await store.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function copy(): string {
  const dir = join(root, `case${n++}`);
  cpSync(template, dir, { recursive: true });
  return dir;
}

async function open(dir: string): Promise<Store> {
  return openStore({ dir, keys: { provider: 'local', keyDir } });
}

/** Every collection the keyring holds live keys for is in the catalog, and the reverse. */
function keysMatchCatalog(store: Store): void {
  const live = Object.entries(store.keys.keyring.collections)
    .filter(([, c]) => c.deks.some((d) => d.state !== 'destroyed'))
    .map(([id]) => id)
    .sort();
  expect(live).toEqual(
    store
      .listCollections()
      .map((c) => c.id)
      .sort(),
  );
}

function expectA(store: Store): void {
  const a = store.collection('a');
  expect(a.count).toBe(records.length);
  expect(a.search([7, 3.5, -7, 1], 1)[0]?.id).toBe('r7');
}

describe('CATALOG deleted or rolled back', () => {
  it('a deleted CATALOG with collections present is CorruptDataError naming CATALOG, not an empty store', async () => {
    const dir = copy();
    await fs.rm(join(dir, 'CATALOG'));
    const err = await open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).code).toBe('VS_CORRUPT_DATA');
    expect((err as CorruptDataError).file).toBe(join(dir, 'CATALOG'));
    expect((err as CorruptDataError).reason).toBe('missing');
  });

  it('an older CATALOG (before a collection was created) is RollbackError naming CATALOG', async () => {
    const dir = copy();
    await fs.writeFile(join(dir, 'CATALOG'), catalogWithA);
    const err = await open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RollbackError);
    expect((err as RollbackError).code).toBe('VS_ROLLBACK');
    expect((err as RollbackError).file).toBe(join(dir, 'CATALOG'));
  });

  it('an entry removed from the current CATALOG is CorruptDataError reason missing-entry', async () => {
    const dir = copy();
    const cat = JSON.parse(await fs.readFile(join(dir, 'CATALOG'), 'utf8')) as { collections: { name: string }[] };
    cat.collections = cat.collections.filter((c) => c.name !== 'a');
    await fs.writeFile(join(dir, 'CATALOG'), JSON.stringify(cat));
    const err = await open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptDataError);
    expect(err).not.toBeInstanceOf(RollbackError);
    expect((err as CorruptDataError).reason).toBe('missing-entry');
    expect((err as CorruptDataError).file).toBe(join(dir, 'CATALOG'));
  });
});

describe('createCollection and dropCollection killed part-way (SIGKILL at named points)', () => {
  const kill = (dir: string, action: 'create' | 'drop', name: string, point: string): void => {
    const r = spawnSync(process.execPath, [CHILD, dir, keyDir, action, name], {
      env: { ...process.env, VECTORSEAL_CRASH_AT: point },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.signal).toBe('SIGKILL');
  };

  for (const [point, finished] of [
    ['create:keys-written', false],
    ['create:catalog-marked', false],
    ['create:files-written', true],
  ] as const) {
    it(`an interrupted create (${point}) is ${finished ? 'finished' : 'undone'} on open, and the store is writable`, {
      timeout: 60_000,
    }, async () => {
      const dir = copy();
      kill(dir, 'create', 'c', point);
      const store = await open(dir);
      try {
        expectA(store);
        expect(store.collection('b').count).toBe(10);
        expect(store.listCollections().some((c) => c.name === 'c')).toBe(finished);
        keysMatchCatalog(store);
        const c = finished ? store.collection('c') : await store.createCollection('c', { dim: 4 });
        await c.upsert({ id: 'x', vector: [1, 2, 3, 4] });
        await c.flush();
      } finally {
        await store.close();
      }
      // The repaired state opens again as it is.
      const again = await open(dir);
      expect(again.collection('c').count).toBe(1);
      keysMatchCatalog(again);
      await again.close();
    });
  }

  for (const point of ['drop:marked', 'drop:keys-destroyed']) {
    it(`an interrupted drop (${point}) is finished on open`, { timeout: 60_000 }, async () => {
      const dir = copy();
      const before = await open(dir);
      const bId = before.collection('b').info.id;
      await before.close();
      kill(dir, 'drop', 'b', point);
      const store = await open(dir);
      try {
        expectA(store);
        expect(store.listCollections().map((c) => c.name)).toEqual(['a']);
        keysMatchCatalog(store);
        expect(existsSync(join(dir, 'collections', bId))).toBe(false);
      } finally {
        await store.close();
      }
    });
  }
});
