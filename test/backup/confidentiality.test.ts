import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupStore, restoreBackup, verifyBackup } from '../../src/backup/index.js';
import { KeyDestroyedError } from '../../src/errors.js';
import { KeyManager } from '../../src/keys/key-manager.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import { prng } from '../store/helpers.js';
import { f32, listFiles } from './helpers.js';

describe('what a backup reveals, and what a shred does to it', () => {
  it('no vector bytes, ids, metadata strings or DEK bytes in any file of a backup (segments and unflushed WAL records)', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { stagingDir: d.stagingDir });
    const c = await store.createCollection('c', { dim: 8 });
    const r = prng(1234);
    const records = Array.from({ length: 400 }, (_, i) => ({
      id: `canary-id-${String(i).padStart(6, '0')}`,
      vector: Array.from({ length: 8 }, () => Math.round(r() * 1e6) / 1e3 + 1000),
      metadata: { title: `ZEBRA-CANARY-TITLE-${i}`, nested: { note: `QUOKKA-NOTE-${i}` } },
    }));
    await c.upsert(records.slice(0, 250));
    await c.flush();
    await c.upsert(records.slice(250)); // these stay in the WAL
    await c.delete(records.slice(0, 5).map((x) => x.id));
    const to = join(d.root, 'backup');
    await backupStore(store, { to });
    await store.close({ flush: false });

    const km = await KeyManager.open({ dir: d.dir, localKeyDir: d.keyDir });
    const dek = await km.withDek(c.info.id, 1, (k) => Buffer.from(k));
    const backupKey = await km.withDek('vectorseal-backup', 1, (k) => Buffer.from(k));
    await km.close();
    const needles: [string, Buffer][] = [
      ['DEK', dek],
      ['backup key', backupKey],
    ];
    for (const rec of records) {
      needles.push([`id ${rec.id}`, Buffer.from(rec.id)]);
      needles.push([`title ${rec.metadata.title}`, Buffer.from(rec.metadata.title)]);
      needles.push([`note ${rec.metadata.nested.note}`, Buffer.from(rec.metadata.nested.note)]);
      needles.push([`vector of ${rec.id}`, f32(rec.vector.slice(0, 4))]);
    }
    // Base64 and hex of the keys too (the keyring and manifest are text).
    for (const [what, k] of [
      ['DEK', dek],
      ['backup key', backupKey],
    ] as const) {
      needles.push([`${what} (base64)`, Buffer.from(k.toString('base64'))]);
      needles.push([`${what} (hex)`, Buffer.from(k.toString('hex'))]);
    }
    const files = await listFiles(to);
    expect(files.some((f) => f.startsWith('objects/'))).toBe(true);
    const found: string[] = [];
    for (const f of files) {
      const bytes = await fs.readFile(join(to, f));
      for (const [what, needle] of needles) if (bytes.includes(needle)) found.push(`${what} in ${f}`);
    }
    expect(found).toEqual([]);
    // The WAL records really are in the backup (a restore has them).
    const out = join(d.root, 'out');
    const rep = await restoreBackup({ from: to, dir: out, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
    expect(rep.collections[0]!.count).toBe(395);
  });

  it(
    "a backup taken before a tenant's deletion cannot restore that tenant once its own KEK is destroyed; " +
      'other collections still restore',
    async () => {
      const d = storeDirs();
      const store = await openTestStore(d, { stagingDir: d.stagingDir });
      await LocalKekProvider.init({ keyId: 'acme-kek', keyDir: d.keyDir });
      await store.keys.addKek('acme', { provider: 'local', keyId: 'acme-kek', config: { keyDir: d.keyDir } });
      await store.keys.createTenant('acme', { keks: ['acme'] });
      const acme = await store.createCollection('acme-docs', { dim: 4, tenant: 'acme' });
      const shared = await store.createCollection('shared-docs', { dim: 4 });
      await acme.upsert([{ id: 'a1', vector: [1, 2, 3, 4] }]);
      await shared.upsert([{ id: 's1', vector: [4, 3, 2, 1] }]);
      await store.flush();
      const to = join(d.root, 'backup');
      await backupStore(store, { to });
      // Before the shred the backup opens entirely.
      await expect(verifyBackup(to, { withKeys: true, localKeyDir: d.keyDir })).resolves.toMatchObject({ mac: 'verified' });

      const now = new Date();
      await store.keys.scheduleTenantDeletion('acme', { days: 7, now });
      const shred = await store.keys.shredDue({ now: new Date(now.getTime() + 8 * 86_400_000) });
      expect(shred.keks).toEqual({ acme: 'destroyed' });
      await store.close({ flush: false });

      // The backup is intact (hashes, MAC under the store's KEK)...
      await expect(verifyBackup(to)).resolves.toBeDefined();
      // ...but the tenant's DEK, wrapped only under its destroyed KEK, no longer unwraps.
      await expect(verifyBackup(to, { withKeys: true, localKeyDir: d.keyDir })).rejects.toBeInstanceOf(KeyDestroyedError);
      const dest = join(d.root, 'restored');
      await expect(restoreBackup({ from: to, dir: dest, localKeyDir: d.keyDir, stagingDir: d.stagingDir })).rejects.toBeInstanceOf(
        KeyDestroyedError,
      );
      await expect(fs.access(dest)).rejects.toThrow();
      const acmeOnly = join(d.root, 'acme-only');
      await expect(
        restoreBackup({ from: to, dir: acmeOnly, collections: ['acme-docs'], localKeyDir: d.keyDir, stagingDir: d.stagingDir }),
      ).rejects.toBeInstanceOf(KeyDestroyedError);
      // The other collections of the same backup restore.
      const rest = await restoreBackup({
        from: to,
        dir: dest,
        collections: ['shared-docs'],
        localKeyDir: d.keyDir,
        stagingDir: d.stagingDir,
      });
      expect(rest.collections).toEqual([expect.objectContaining({ name: 'shared-docs', count: 1 })]);
    },
  );
});
