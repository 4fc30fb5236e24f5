import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backupStore, restoreBackup } from '../../src/backup/index.js';
import { CorruptDataError, ReadOnlyError, RollbackError, SnapshotBusyError, StoreLockedError } from '../../src/errors.js';
import { readCoherent } from '../../src/store/snapshot.js';
import { openStore, type Store } from '../../src/store/index.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';

const vec = (i: number): number[] => [i, i * 0.5, Math.sin(i), 1];

/** Every file and directory under `dir` with its size, mtime (ns), inode and content hash. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    const st = await fs.stat(d, { bigint: true });
    out.push(`${rel}/ ${st.mtimeNs} ${st.ino} ${st.mode}`);
    for (const e of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p, `${rel}/${e.name}`);
      else {
        const s = await fs.stat(p, { bigint: true });
        const h = createHash('sha256')
          .update(await fs.readFile(p))
          .digest('hex');
        out.push(`${rel}/${e.name} ${s.size} ${s.mtimeNs} ${s.ino} ${s.mode} ${h}`);
      }
    }
  };
  await walk(dir, '');
  return out;
}

const readers: Store[] = [];
async function openReader(d: TestStoreDirs): Promise<Store> {
  const r = await openStore({ dir: d.dir, readOnly: true, keys: { provider: 'local', keyDir: d.keyDir }, stagingDir: d.stagingDir });
  readers.push(r);
  return r;
}

describe('readers beside a writer (readOnly: true)', () => {
  it('opens a snapshot while the writer holds the lock, sees what was acknowledged, and refresh() moves it on', async () => {
    const d = storeDirs();
    const w = await openTestStore(d);
    const c = await w.createCollection('docs', { dim: 4 });
    await c.upsert(Array.from({ length: 30 }, (_, i) => ({ id: `a${i}`, vector: vec(i), metadata: { i } })));
    await c.flush();
    await c.upsert(Array.from({ length: 5 }, (_, i) => ({ id: `b${i}`, vector: vec(100 + i) })));
    await c.delete('a3');

    const r = await openReader(d);
    expect(r.readOnly).toBe(true);
    const rc = r.collection('docs');
    expect(rc.count).toBe(34);
    expect(rc.get('a3')).toBeUndefined();
    expect(Array.from(rc.get('b2')!.vector)).toEqual(vec(102).map((x) => Math.fround(x)));
    expect(rc.search(vec(7), 1)[0]!.id).toBe('a7');

    // The writer moves on; the snapshot stays as it was until refresh().
    await c.upsert({ id: 'later', vector: vec(500) });
    await c.compact();
    const other = await w.createCollection('other', { dim: 2 });
    await other.upsert({ id: 'x', vector: [1, 2] });
    expect(rc.has('later')).toBe(false);
    expect(r.listCollections().map((s) => s.name)).toEqual(['docs']);
    await r.refresh();
    // The handle taken before the refresh serves the new snapshot.
    expect(rc.has('later')).toBe(true);
    expect(rc.count).toBe(35);
    expect(r.listCollections().map((s) => s.name)).toEqual(['docs', 'other']);
    expect(r.collection('other').get('x')?.id).toBe('x');
    await r.close();
  });

  it(
    'writes no file: the whole tree (sizes, mtimes, inodes, hashes) is the same after open, searches, ' + 'refresh, backup and close',
    async () => {
      const d = storeDirs();
      const w = await openTestStore(d);
      const c = await w.createCollection('docs', { dim: 4 });
      await c.upsert(Array.from({ length: 20 }, (_, i) => ({ id: `a${i}`, vector: vec(i) })));
      await c.flush();
      await c.upsert({ id: 'tail', vector: vec(99) });
      (await w.keys.systemKey('backup')).release();
      const before = await tree(d.dir);
      const r = await openReader(d);
      r.collection('docs').search(vec(1), 3);
      r.collection('docs').stats();
      r.listCollections();
      await r.refresh();
      const backupDir = join(d.root, 'backup');
      await backupStore(r, { to: backupDir });
      await r.close();
      expect(await tree(d.dir)).toEqual(before);
    },
  );

  it('refuses every write with ReadOnlyError, and a read-only create', async () => {
    const d = storeDirs();
    const w = await openTestStore(d);
    await w.createCollection('docs', { dim: 4 });
    const r = await openReader(d);
    const rc = r.collection('docs');
    await expect(rc.upsert({ id: 'x', vector: vec(1) })).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(rc.delete('x')).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(rc.flush()).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(rc.compact()).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(rc.updateMetadata({ id: 'x', metadata: { a: 1 } })).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(r.createCollection('n', { dim: 2 })).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(r.dropCollection('docs')).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(r.flush()).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(r.rotateKek()).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(r.rekey('docs')).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(openStore({ dir: d.dir, readOnly: true, create: true })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    await expect(openStore({ dir: join(d.root, 'none'), readOnly: true })).rejects.toMatchObject({ code: 'VS_NOT_FOUND' });
  });

  it('a second writable open in the same process is "already open in this process"; readers open any number of times', async () => {
    const d = storeDirs();
    await openTestStore(d);
    const err = await openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreLockedError);
    expect((err as Error).message).toMatch(/already open in this process/);
    await openReader(d);
    await openReader(d);
  });

  it('verifies what it reads as the writer does: a changed segment, an older manifest and an edited STATE are named', async () => {
    const d = storeDirs();
    const w = await openTestStore(d);
    const c = await w.createCollection('docs', { dim: 4 });
    await c.upsert(Array.from({ length: 10 }, (_, i) => ({ id: `a${i}`, vector: vec(i) })));
    await c.flush();
    const manifest = join(c.dir, 'MANIFEST');
    const oldManifest = await fs.readFile(manifest);
    await c.upsert({ id: 'b', vector: vec(50) });
    await c.flush();
    await w.close();

    // A segment file with one byte changed.
    const seg = join(c.dir, 'seg', '000000000002.vectors.vseg');
    const good = await fs.readFile(seg);
    const bad = Buffer.from(good);
    bad[bad.length - 20] = (bad[bad.length - 20] as number) ^ 1;
    await fs.writeFile(seg, bad);
    const e1 = await openReader(d).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(CorruptDataError);
    expect((e1 as CorruptDataError).file).toBe(seg);
    await fs.writeFile(seg, good);

    // The previous manifest, authentic but older than the state records.
    const current = await fs.readFile(manifest);
    await fs.writeFile(manifest, oldManifest);
    const e2 = await openReader(d).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(RollbackError);
    expect((e2 as RollbackError).file).toBe(manifest);
    await fs.writeFile(manifest, current);

    // STATE edited (its MAC no longer matches).
    const stateFile = join(d.dir, 'STATE');
    const state = await fs.readFile(stateFile);
    await fs.writeFile(stateFile, Buffer.from(state.toString('utf8').replace('"clean":true', '"clean":false')));
    const e3 = await openReader(d).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(CorruptDataError);
    expect((e3 as CorruptDataError).file).toBe(stateFile);
    await fs.writeFile(stateFile, state);

    const r = await openReader(d);
    expect(r.collection('docs').count).toBe(11);
  });

  it('a backup from a reader holds exactly its snapshot, while the writer keeps writing', async () => {
    const d = storeDirs();
    const w = await openTestStore(d);
    const c = await w.createCollection('docs', { dim: 4 });
    (await w.keys.systemKey('backup')).release();
    await c.upsert(Array.from({ length: 15 }, (_, i) => ({ id: `a${i}`, vector: vec(i) })));
    await c.flush();
    await c.upsert(Array.from({ length: 4 }, (_, i) => ({ id: `t${i}`, vector: vec(200 + i) })));
    const r = await openReader(d);
    // Appended to the WAL file the snapshot read part of, and a compaction.
    await c.upsert({ id: 'after', vector: vec(300) });
    await c.compact();
    const backupDir = join(d.root, 'backup');
    await backupStore(r, { to: backupDir });
    const restored = join(d.root, 'restored');
    await restoreBackup({ from: backupDir, dir: restored, localKeyDir: d.keyDir });
    const s = await openStore({ dir: restored, keys: { provider: 'local', keyDir: d.keyDir } });
    try {
      const rc = s.collection('docs');
      expect(rc.ids().sort()).toEqual(r.collection('docs').ids().sort());
      expect(rc.has('after')).toBe(false);
    } finally {
      await s.close();
    }
  });

  it("a reader cannot take a store's first backup (it would write the keyring): ReadOnlyError", async () => {
    const d = storeDirs();
    const w = await openTestStore(d);
    await w.createCollection('docs', { dim: 4 });
    const r = await openReader(d);
    await expect(backupStore(r, { to: join(d.root, 'b') })).rejects.toBeInstanceOf(ReadOnlyError);
  });
});

// Readers are closed after each test (the writer by the helpers).
afterEach(async () => {
  for (const r of readers.splice(0)) await r.close().catch(() => undefined);
});

describe('readCoherent: a race is read again, damage is thrown as it is', () => {
  it(
    'an error while none of the deciding files changed is thrown at once; ' + 'one while they change each time ends in VS_SNAPSHOT_BUSY',
    async () => {
      const d = storeDirs();
      const w = await openTestStore(d);
      await w.createCollection('docs', { dim: 4 });
      await w.close();
      const damage = new CorruptDataError('damaged', { file: 'x', reason: 'auth' });
      let calls = 0;
      const still = await readCoherent(d.dir, async () => {
        calls++;
        throw damage;
      }).catch((e: unknown) => e);
      expect(still).toBe(damage);
      expect(calls).toBe(1);

      // A "writer" that changes CATALOG during every attempt (as a racing flush or create would change a deciding file).
      const catalog = join(d.dir, 'CATALOG');
      let n = 0;
      calls = 0;
      const busy = await readCoherent(
        d.dir,
        async () => {
          calls++;
          await fs.appendFile(catalog, ' ');
          throw new CorruptDataError(`race ${n++}`, { file: catalog, reason: 'state' });
        },
        { attempts: 4, pauseMs: 1 },
      ).catch((e: unknown) => e);
      expect(busy).toBeInstanceOf(SnapshotBusyError);
      expect((busy as SnapshotBusyError).code).toBe('VS_SNAPSHOT_BUSY');
      expect(((busy as Error).cause as Error).message).toMatch(/^race 3/);
      expect(calls).toBe(4);

      // A race that ends: the next attempt succeeds.
      calls = 0;
      const ok = await readCoherent(
        d.dir,
        async () => {
          if (calls++ === 0) {
            await fs.appendFile(catalog, ' ');
            throw new Error('ENOENT-like race');
          }
          return 'snapshot';
        },
        { pauseMs: 1 },
      );
      expect(ok).toBe('snapshot');
      expect(calls).toBe(2);
    },
  );
});
