import { cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import { collectionDir } from '../../src/store/collection.js';
import { CLI_BIN, runCli } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';
import { DAY, auditEntries, openLifecycleStore, vectorOf } from './helpers.js';

interface VerifyJson {
  files: { file: string; status: string; collectionId?: string }[];
  openable: number;
}

describe('scheduled deletion and crypto-shredding', () => {
  beforeAll(async () => {
    // verify-shredded runs from the built CLI: `npm run build` first.
    await fs.access(CLI_BIN);
  });

  it('removes a deleted tenant after its window; copies of its files and of the old keyring cannot be opened; others intact', async () => {
    const d = storeDirs('vs-life-');
    const store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    await store.createTenant('globex', { kek: { provider: 'local' } });
    await store.createTenant('initech'); // on the store's shared KEK
    const a = await store.createCollection('a', { dim: 8, tenant: 'acme' });
    const b = await store.createCollection('b', { dim: 8, tenant: 'globex' });
    const c = await store.createCollection('c', { dim: 8, tenant: 'initech' });
    for (const [col, salt] of [
      [a, 0],
      [b, 0.25],
      [c, 0.5],
    ] as const) {
      await col.upsert(Array.from({ length: 30 }, (_, i) => ({ id: `r-${i}`, vector: vectorOf(i, 8, salt), metadata: { i } })));
      await col.flush();
      await col.upsert({ id: 'late', vector: vectorOf(100, 8, salt) }); // stays in the WAL
    }
    const aId = a.info.id;
    const cId = c.info.id;
    // The attacker's copies, taken before the deletion.
    const copyA = join(d.root, 'copy-a');
    const copyC = join(d.root, 'copy-c');
    cpSync(collectionDir(d.dir, aId), copyA, { recursive: true });
    cpSync(collectionDir(d.dir, cId), copyC, { recursive: true });
    const oldKeyring = join(d.root, 'KEYRING.before');
    cpSync(join(d.dir, 'KEYRING'), oldKeyring);
    const copies = [copyA, copyC];

    // Control: before the deletion the copies open.
    const before = await runCli(['verify-shredded', '--key-dir', d.keyDir, '--dir', d.dir, '--keyring', oldKeyring, '--json', ...copies]);
    expect(before.status).toBe(3);
    const beforeJson = JSON.parse(before.stdout) as VerifyJson;
    expect(beforeJson.files.length).toBeGreaterThanOrEqual(8);
    expect(beforeJson.files.every((f) => f.status === 'OPENABLE')).toBe(true);

    const t0 = new Date();
    await store.scheduleTenantDeletion('acme', { days: 7, now: t0 });
    await store.scheduleTenantDeletion('initech', { days: 7, now: t0 });
    const early = await store.maintain({ now: new Date(t0.getTime() + 6 * DAY) });
    expect(early.shredded.tenants).toEqual([]);
    expect(existsSync(collectionDir(d.dir, aId))).toBe(true);

    const report = await store.maintain({ now: new Date(t0.getTime() + 7 * DAY + 1000) });
    expect(report.shredded.tenants.sort()).toEqual(['acme', 'initech']);
    expect(report.shredded.keks).toEqual({ 'tenant-acme': 'destroyed' });
    expect(report.shredded.sharedKeks).toEqual(['default']);
    expect(existsSync(collectionDir(d.dir, aId))).toBe(false);
    expect(existsSync(collectionDir(d.dir, cId))).toBe(false);
    expect(store.listCollections().map((x) => x.name)).toEqual(['b']);
    expect(() => store.collection('a')).toThrow(expect.objectContaining({ code: 'VS_NOT_FOUND' }));
    // The tenant's own local KEK is gone from its key directory.
    const acmeKeyId = store.keys.keyring.keks['tenant-acme']!.keyId;
    expect(existsSync(join(d.keyDir, acmeKeyId)) ? readdirSync(join(d.keyDir, acmeKeyId)).filter((n) => n.endsWith('.key')) : []).toEqual(
      [],
    );
    // B is intact.
    expect(b.count).toBe(31);
    expect(b.search(vectorOf(4, 8, 0.25), 1)[0]!.id).toBe('r-4');
    const shredEvents = auditEntries(d.dir).filter((e) => e.action === 'shred');
    expect(shredEvents.map((e) => e.tenant).sort()).toEqual(['acme', 'initech']);
    expect(auditEntries(d.dir).filter((e) => e.action === 'maintain').length).toBe(2);
    await store.close();

    const after = await runCli([
      'verify-shredded',
      '--key-dir',
      d.keyDir,
      '--dir',
      d.dir,
      '--keyring',
      oldKeyring,
      '--key-dir',
      d.keyDir,
      '--json',
      ...copies,
    ]);
    expect(after.stderr).toBe('');
    expect(after.status).toBe(0);
    const afterJson = JSON.parse(after.stdout) as VerifyJson;
    expect(afterJson.openable).toBe(0);
    expect(afterJson.files.length).toBe(beforeJson.files.length);
    expect(afterJson.files.every((f) => f.status === 'unrecoverable')).toBe(true);
    // The human form names each file.
    const text = await runCli(['verify-shredded', '--key-dir', d.keyDir, '--dir', d.dir, '--keyring', oldKeyring, copyA]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^unrecoverable +.*MANIFEST/m);

    // B's own files still open with the current keyring (the check is not vacuous).
    const bFiles = await runCli(['verify-shredded', '--key-dir', d.keyDir, '--dir', d.dir, collectionDir(d.dir, b.info.id)]);
    expect(bFiles.status).toBe(3);
  });

  it('shreds a tenant whose window passed when the store opens', async () => {
    const d = storeDirs('vs-life-');
    const t0 = new Date();
    let store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    const a = await store.createCollection('a', { dim: 8, tenant: 'acme' });
    await a.upsert({ id: 'x', vector: vectorOf(1) });
    const aId = a.info.id;
    await store.scheduleTenantDeletion('acme', { now: t0 });
    await store.close();
    store = await openLifecycleStore(d, { clock: () => new Date(t0.getTime() + 29 * DAY) });
    expect(store.listCollections().map((x) => x.name)).toEqual(['a']);
    await store.close();
    store = await openLifecycleStore(d, { clock: () => new Date(t0.getTime() + 30 * DAY + 1000) });
    expect(store.listCollections()).toEqual([]);
    expect(existsSync(collectionDir(d.dir, aId))).toBe(false);
    expect(store.keys.tenant('acme').state).toBe('deleted');
  });
});
