import { cpSync, promises as fs, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, RollbackError } from '../../src/errors.js';
import { registerAuditCommands } from '../../src/cli/commands/audit.js';
import { resolveStoreAudit } from '../../src/cli/audit-key.js';
import { WAL_HEADER_SIZE } from '../../src/storage/wal.js';
import { openStore, type Store } from '../../src/store/index.js';
import { backupStore, restoreBackup } from '../../src/backup/index.js';
import { runCommands } from '../helpers/cli-in-process.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';

/**
 * The store's authenticated state (STATE) against partial rollbacks: each
 * attack ends in a typed error naming the file, or in exactly the
 * acknowledged data.
 */

const v = (i: number): number[] => [i, i + 1, i + 2, i + 3];

async function reopen(d: TestStoreDirs, extra: Record<string, unknown> = {}): Promise<Store> {
  return openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir }, ...extra });
}

async function openError(d: TestStoreDirs, extra: Record<string, unknown> = {}): Promise<CorruptDataError> {
  const err = await reopen(d, extra).then(
    async (s) => {
      await s.close({ flush: false });
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptDataError);
  return err as CorruptDataError;
}

async function walFiles(colDir: string): Promise<string[]> {
  return (await fs.readdir(join(colDir, 'wal')))
    .filter((n) => n.endsWith('.wal'))
    .sort()
    .map((n) => join(colDir, 'wal', n));
}

/** Lists every file under `dir` (relative paths, sorted). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else out.push(r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** Three WAL files in collection "c": 1 and 2 superseded (by re-keys), 3 the newest. */
async function threeWalFiles(d: TestStoreDirs): Promise<{ store: Store; colDir: string }> {
  const store = await openTestStore(d);
  const c = await store.createCollection('c', { dim: 4 });
  await c.upsert([
    { id: 'a', vector: v(1) },
    { id: 'b', vector: v(2) },
  ]);
  await c.rekey();
  await c.upsert({ id: 'c', vector: v(3) });
  await c.delete('a');
  await c.rekey();
  await c.upsert({ id: 'd', vector: v(4) });
  return { store, colDir: c.dir };
}

/** A copy of a store directory as a crash would leave it: every acknowledged write is on disk, no clean close, no live lock. */
function crashImage(d: TestStoreDirs, into: string): TestStoreDirs {
  cpSync(d.dir, into, { recursive: true });
  rmSync(join(into, 'LOCK'), { force: true });
  return { ...d, dir: into };
}

const runAudit = (args: string[]) => runCommands((program) => registerAuditCommands(program, resolveStoreAudit), args);

describe('store state: partial rollbacks are refused', () => {
  it("a manifest rolled back with the collection's WAL files deleted: RollbackError naming MANIFEST", async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert([
      { id: 'a', vector: v(1) },
      { id: 'b', vector: v(2) },
    ]);
    await c.flush();
    const older = await fs.readFile(join(c.dir, 'MANIFEST'));
    await c.delete('a');
    await c.upsert({ id: 'z', vector: v(9) });
    await c.flush();
    await c.upsert({ id: 'w', vector: v(7) });
    await store.close({ flush: false });
    await fs.writeFile(join(c.dir, 'MANIFEST'), older);
    for (const f of await walFiles(c.dir)) await fs.rm(f);
    const err = await openError(d);
    expect(err).toBeInstanceOf(RollbackError);
    expect(err.file).toBe(join(c.dir, 'MANIFEST'));
  });

  it('a middle WAL file cut back to its header: CorruptDataError naming that file (closed store and crash image)', async () => {
    const d = storeDirs();
    const { store, colDir } = await threeWalFiles(d);
    const image = crashImage(d, join(d.root, 'image'));
    await store.close({ flush: false });
    const files = await walFiles(colDir);
    expect(files).toHaveLength(3);
    const middle = files[1] as string;
    await fs.truncate(middle, WAL_HEADER_SIZE);
    const err = await openError(d);
    expect(err.file).toBe(middle);
    expect(err.reason).toBe('sealed');
    // The same attack on a store that crashed (no clean close): the file was sealed when its successor was created.
    const imageMiddle = middle.replace(d.dir, image.dir);
    await fs.truncate(imageMiddle, WAL_HEADER_SIZE);
    const err2 = await openError(image);
    expect(err2.file).toBe(imageMiddle);
  });

  it('a middle WAL file deleted: CorruptDataError naming it', async () => {
    const d = storeDirs();
    const { store, colDir } = await threeWalFiles(d);
    await store.close({ flush: false });
    const middle = (await walFiles(colDir))[1] as string;
    await fs.rm(middle);
    const err = await openError(d);
    expect(err.file).toBe(middle);
  });

  it(
    'after a clean close, the newest WAL file cut, emptied or deleted is detected; ' +
      'untouched it opens with exactly the acknowledged data',
    async () => {
      const d = storeDirs();
      const { store, colDir } = await threeWalFiles(d);
      await store.close({ flush: false });
      const newest = (await walFiles(colDir)).at(-1) as string;
      const good = await fs.readFile(newest);
      for (const attack of [() => fs.truncate(newest, good.length - 5), () => fs.truncate(newest, WAL_HEADER_SIZE), () => fs.rm(newest)]) {
        await attack();
        const err = await openError(d);
        expect(err.file).toBe(newest);
        await fs.writeFile(newest, good);
      }
      const s = await reopen(d);
      const c = s.collection('c');
      expect(c.ids().sort()).toEqual(['b', 'c', 'd']);
      expect(Array.from(c.get('d')?.vector ?? [])).toEqual(v(4));
      await s.close();
    },
  );

  it('a crash image opens with every acknowledged write', async () => {
    const d = storeDirs();
    const { store } = await threeWalFiles(d);
    const image = crashImage(d, join(d.root, 'image'));
    await store.close({ flush: false });
    const s = await reopen(image);
    expect(s.collection('c').ids().sort()).toEqual(['b', 'c', 'd']);
    await s.close();
  });

  it('an edited or deleted STATE: CorruptDataError naming STATE', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await store.createCollection('c', { dim: 4 });
    await store.close();
    const file = join(d.dir, 'STATE');
    const good = await fs.readFile(file);
    const text = good.toString('utf8').replace('"clean":true', '"clean":false');
    await fs.writeFile(file, text);
    expect((await openError(d)).file).toBe(file);
    await fs.rm(file);
    const err = await openError(d);
    expect(err.file).toBe(file);
    expect(err.reason).toBe('missing');
  });

  it('a damaged STORE file is named as STORE', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await store.close();
    const file = join(d.dir, 'STORE');
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(
      file,
      text.replace(/"storeId": "([0-9a-f])/, (_m, c: string) => `"storeId": "${c === 'a' ? 'b' : 'a'}`),
    );
    expect((await openError(d)).file).toBe(file);
    await fs.writeFile(file, text.replace('"durability": "batch"', '"durability": "none"'));
    const err = await openError(d);
    expect(err.file).toBe(file);
    expect(err.reason).toBe('state');
  });
});

describe('store state: the audit trail head', () => {
  it(
    'a trail cut back to the close checkpoint of an earlier open: ' +
      'refused on open (RollbackError naming audit.log) and TAMPERED in audit verify',
    async () => {
      const d = storeDirs();
      let store = await openTestStore(d);
      await store.createCollection('c', { dim: 4 });
      await store.close();
      const trail = join(d.dir, 'audit.log');
      const earlier = await fs.readFile(trail);
      store = await reopen(d);
      await store.createTenant('t1');
      await store.close();
      await fs.writeFile(trail, earlier);
      const err = await openError(d);
      expect(err).toBeInstanceOf(RollbackError);
      expect(err.file).toBe(trail);
      process.env['VECTORSEAL_KEY_DIR'] = d.keyDir;
      try {
        const r = await runAudit(['audit', 'verify', '--dir', d.dir]);
        expect(r.exitCode).toBe(2);
        expect(r.stdout).toMatch(/TAMPERED \(truncated\)/);
      } finally {
        delete process.env['VECTORSEAL_KEY_DIR'];
      }
    },
  );

  it('audit verify reports a store that is open as "open", honours VECTORSEAL_DIR, and says intact once it is closed', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    await store.createCollection('c', { dim: 4 });
    process.env['VECTORSEAL_KEY_DIR'] = d.keyDir;
    process.env['VECTORSEAL_DIR'] = d.dir;
    try {
      const open = await runAudit(['audit', 'verify']);
      expect(open.exitCode).toBe(0);
      expect(open.stdout).toMatch(/: open \(the store is held by process/);
      expect(open.stdout).not.toMatch(/TAMPERED/);
      await store.close();
      const closed = await runAudit(['audit', 'verify', '--json']);
      expect(closed.exitCode).toBe(0);
      expect(JSON.parse(closed.stdout)).toMatchObject({ ok: true, closed: true });
    } finally {
      delete process.env['VECTORSEAL_KEY_DIR'];
      delete process.env['VECTORSEAL_DIR'];
    }
  });
});

describe('store state: whole-directory rollback and the freshness anchor', () => {
  it('with the anchor on, a whole directory put back to an older complete copy is a RollbackError naming STATE', async () => {
    const d = storeDirs();
    const anchor = join(d.root, 'anchor', 'store.anchor');
    await fs.mkdir(join(d.root, 'anchor'));
    let store = await openTestStore(d, { freshnessAnchor: anchor });
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert({ id: 'a', vector: v(1) });
    await store.close();
    const older = join(d.root, 'older');
    cpSync(d.dir, older, { recursive: true });
    store = await reopen(d, { freshnessAnchor: anchor });
    await store.collection('c').delete('a');
    await store.close();
    rmSync(d.dir, { recursive: true });
    cpSync(older, d.dir, { recursive: true });
    const err = await openError(d, { freshnessAnchor: anchor });
    expect(err).toBeInstanceOf(RollbackError);
    expect(err.file).toBe(join(d.dir, 'STATE'));
    // Documented limit: without the anchor the older complete copy is indistinguishable from the real store.
    const s = await reopen(d);
    expect(s.collection('c').has('a')).toBe(true);
    await s.close();
  });

  it('the anchor must live outside the data directory', async () => {
    const d = storeDirs();
    await expect(openTestStore(d, { freshnessAnchor: join(d.dir, 'anchor') })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
  });
});

describe('store state: read-only work writes no new file', () => {
  it('opening, reading and closing a store leaves the same set of files (no empty WAL file)', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert({ id: 'a', vector: v(1) });
    await store.close();
    const before = await tree(d.dir);
    for (let i = 0; i < 3; i++) {
      store = await reopen(d);
      expect(store.collection('c').get('a')).toBeDefined();
      store.collection('c').search(v(1), 1);
      await store.close();
    }
    expect(await tree(d.dir)).toEqual(before);
    expect(before.filter((f) => f.endsWith('.wal'))).toEqual([]);
  });
});

describe('store state: backup and restore', () => {
  it('a restore builds a STATE that covers the restored files (a restored WAL file cut back is detected)', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const c = await store.createCollection('c', { dim: 4 });
    await c.upsert([
      { id: 'a', vector: v(1) },
      { id: 'b', vector: v(2) },
    ]);
    await c.flush();
    await c.upsert({ id: 'x', vector: v(5) });
    await backupStore(store, { to: join(d.root, 'backup') });
    await store.close();
    const restored: TestStoreDirs = { ...d, dir: join(d.root, 'restored') };
    await restoreBackup({ from: join(d.root, 'backup'), dir: restored.dir, localKeyDir: d.keyDir });
    const files = await tree(restored.dir);
    expect(files).toContain('STATE');
    const s = await reopen(restored);
    expect(s.collection('c').ids().sort()).toEqual(['a', 'b', 'x']);
    const colDir = s.collection('c').dir;
    await s.close({ flush: false });
    const wal = (await walFiles(colDir))[0] as string;
    await fs.truncate(wal, WAL_HEADER_SIZE);
    expect((await openError(restored)).file).toBe(wal);
  });
});

describe('the keyring pinned by the store state', () => {
  it(
    'an older authentic KEYRING (a disabled collection enabled again by putting back its copy) ' + 'is a RollbackError naming KEYRING',
    async () => {
      const d = storeDirs();
      const store = await openTestStore(d);
      const c = await store.createCollection('c', { dim: 4 });
      await c.upsert({ id: 'a', vector: v(1) });
      await store.close();
      const older = await fs.readFile(join(d.dir, 'KEYRING'));

      const again = await reopen(d);
      await again.disableCollection('c');
      await again.close();

      // The older keyring is authentic (its MAC chain verifies): only the state can tell it is behind.
      const newest = await fs.readFile(join(d.dir, 'KEYRING'));
      await fs.writeFile(join(d.dir, 'KEYRING'), older);
      const err = await openError(d);
      expect(err).toBeInstanceOf(RollbackError);
      expect(err.file).toBe(join(d.dir, 'KEYRING'));

      // Put back, the newest keyring opens, with the collection still disabled until it is enabled.
      await fs.writeFile(join(d.dir, 'KEYRING'), newest);
      const s = await reopen(d);
      try {
        await s.enableCollection('c');
        expect(s.collection('c').get('a')?.id).toBe('a');
      } finally {
        await s.close();
      }
    },
  );
});
