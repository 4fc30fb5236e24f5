import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupStore, restoreBackup, verifyBackup } from '../../src/backup/index.js';
import { CorruptDataError } from '../../src/errors.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';
import { randomVectors } from '../store/helpers.js';
import { listFiles } from './helpers.js';

async function makeBackup(d: TestStoreDirs): Promise<string> {
  const store = await openTestStore(d, { stagingDir: d.stagingDir });
  const c = await store.createCollection('c', { dim: 4 });
  const v = randomVectors(200, 4, 11);
  await c.upsert(v.slice(0, 150).map((vector, i) => ({ id: `k${i}`, vector, metadata: { i } })));
  await c.flush();
  await c.upsert(v.slice(150).map((vector, i) => ({ id: `w${i}`, vector })));
  const to = join(d.root, 'backup');
  await backupStore(store, { to });
  await store.close({ flush: false });
  return to;
}

/** verify (without and with keys) and restore must all fail with a CorruptDataError naming `file`, and write nothing. */
async function expectCaught(d: TestStoreDirs, to: string, file: string, reason: string, keyless = true): Promise<void> {
  const check = (err: unknown): void => {
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).code).toBe('VS_CORRUPT_DATA');
    expect((err as CorruptDataError).file).toBe(file);
    expect((err as CorruptDataError).reason).toBe(reason);
  };
  if (keyless) await verifyBackup(to).then(() => expect.unreachable('verify passed'), check);
  await verifyBackup(to, { withKeys: true, localKeyDir: d.keyDir }).then(() => expect.unreachable('verify --with-keys passed'), check);
  const dest = join(d.root, 'restored');
  await restoreBackup({ from: to, dir: dest, localKeyDir: d.keyDir, stagingDir: d.stagingDir }).then(
    () => expect.unreachable('restore passed'),
    check,
  );
  // Nothing was written: no target, no hidden staging directory beside it.
  await expect(fs.access(dest)).rejects.toThrow();
  expect((await fs.readdir(d.root)).filter((n) => n.includes('restore'))).toEqual([]);
}

async function objects(to: string): Promise<string[]> {
  return (await listFiles(to)).filter((f) => f.startsWith('objects/')).map((f) => join(to, f));
}

describe('tampered backups are caught by verify and by restore before anything is written', () => {
  it('an intact backup verifies', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const r = await verifyBackup(to);
    expect(r.mac).toBe('not checked');
    expect(r.files).toBeGreaterThan(5);
    const k = await verifyBackup(to, { withKeys: true, localKeyDir: d.keyDir });
    expect(k.opened).toMatchObject({ manifests: 1, segments: 3 });
    expect(k.opened!.walRecords).toBeGreaterThan(0);
  });

  it('a changed byte in a segment', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const [victim] = await objects(to);
    const b = await fs.readFile(victim!);
    b[b.length - 7] = (b[b.length - 7] as number) ^ 1;
    await fs.writeFile(victim!, b);
    await expectCaught(d, to, victim!, 'hash');
  });

  it('a truncated WAL file', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const m = JSON.parse(await fs.readFile(join(to, 'snapshots/00000001/BACKUP'), 'utf8')) as { files: { path: string; stored: string }[] };
    const wal = m.files.find((f) => f.path.endsWith('.wal') && f.path.includes('/wal/'))!;
    const file = join(to, wal.stored);
    const b = await fs.readFile(file);
    await fs.writeFile(file, b.subarray(0, b.length - 3));
    await expectCaught(d, to, file, 'length');
  });

  it('a missing file', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const victim = join(to, 'snapshots/00000001/KEYRING');
    await fs.rm(victim);
    await expectCaught(d, to, victim, 'missing');
  });

  it('an extra file, anywhere', async () => {
    for (const where of ['objects/ab/extra', 'notes.txt', 'snapshots/00000001/collections/extra']) {
      const d = storeDirs();
      const to = await makeBackup(d);
      const extra = join(to, where);
      await fs.mkdir(join(extra, '..'), { recursive: true });
      await fs.writeFile(extra, 'x');
      await expectCaught(d, to, extra, 'extra');
    }
  });

  it('a removed backup manifest (its snapshot files become extra)', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    await fs.rm(join(to, 'snapshots/00000001/BACKUP'));
    await expect(verifyBackup(to)).rejects.toBeInstanceOf(CorruptDataError);
    await expect(restoreBackup({ from: to, dir: join(d.root, 'r'), localKeyDir: d.keyDir })).rejects.toBeInstanceOf(CorruptDataError);
    await expect(fs.access(join(d.root, 'r'))).rejects.toThrow();
  });

  it('a file swapped with its manifest entry rewritten to match: hashes pass, the MAC does not', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const manifestFile = join(to, 'snapshots/00000001/BACKUP');
    const m = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as {
      files: { path: string; stored: string; length: number; sha256: string }[];
    };
    const entry = m.files.find((f) => f.path === 'CATALOG')!;
    const forged = Buffer.from(JSON.stringify({ format: 'vectorseal-catalog', version: 1, collections: [] }));
    await fs.writeFile(join(to, entry.stored), forged);
    entry.length = forged.length;
    entry.sha256 = createHash('sha256').update(forged).digest('hex');
    await fs.writeFile(manifestFile, JSON.stringify(m));
    // Structure and hashes are consistent: only a key can tell.
    await expect(verifyBackup(to)).resolves.toMatchObject({ mac: 'not checked' });
    await expectCaught(d, to, manifestFile, 'mac', false);
  });

  it('restore refuses a non-empty target and leaves it alone', async () => {
    const d = storeDirs();
    const to = await makeBackup(d);
    const dest = join(d.root, 'busy');
    await fs.mkdir(dest);
    await fs.writeFile(join(dest, 'keep'), 'mine');
    await expect(restoreBackup({ from: to, dir: dest, localKeyDir: d.keyDir })).rejects.toMatchObject({ code: 'VS_ALREADY_EXISTS' });
    expect(await fs.readdir(dest)).toEqual(['keep']);
  });
});
