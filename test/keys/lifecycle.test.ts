import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyPendingDeletionError,
  NotFoundError,
} from '../../src/errors.js';
import { KEYRING_FILE, KeyManager, type KeyAuditEvent } from '../../src/keys/key-manager.js';
import { claimedRing, forgeRing } from '../helpers/keyring.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { SegmentKind, readSegment, writeSegment } from '../../src/storage/segment.js';
import { newId } from '../../src/util/ids.js';
import { tempDir } from '../helpers/tmp.js';

interface Fixture {
  km: KeyManager;
  dir: string;
  keyDir: string;
  storeId: string;
  events: KeyAuditEvent[];
}

async function setup(): Promise<Fixture> {
  const root = tempDir('vs-life-');
  const storeId = newId();
  const dir = join(root, 'data');
  const keyDir = join(root, 'keys');
  await fs.mkdir(dir);
  const keyId = `store-${storeId}`;
  await LocalKekProvider.init({ keyId, keyDir });
  const events: KeyAuditEvent[] = [];
  const km = await KeyManager.create({
    dir,
    storeId,
    keks: { default: { provider: 'local', keyId, config: { keyDir } } },
    audit: (e) => events.push(e),
    principal: 'test-suite',
  });
  return { km, dir, keyDir, storeId, events };
}

async function tenantWithOwnKek(f: Fixture, tenant: string): Promise<void> {
  const keyId = `tenant-${tenant}-${f.storeId.slice(0, 8)}`;
  await LocalKekProvider.init({ keyId, keyDir: f.keyDir });
  await f.km.addKek(`kek-${tenant}`, { provider: 'local', keyId, config: { keyDir: f.keyDir }, tenant });
  await f.km.createTenant(tenant, { keks: [`kek-${tenant}`] });
}

async function sealedFile(f: Fixture, cid: string, name: string): Promise<string> {
  const path = join(f.dir, name);
  await f.km.withDek(cid, 1, (dek) =>
    writeSegment(
      path,
      { kind: SegmentKind.Vectors, storeId: f.storeId, collectionId: cid, segmentId: 1, dekVersion: 1 },
      dek,
      randomBytes(3000),
    ),
  );
  return path;
}

describe('tenant keys', () => {
  it('keys each tenant under its own KEK; disabling A stops A at once and leaves B untouched', async () => {
    const f = await setup();
    await tenantWithOwnKek(f, 'acme');
    await tenantWithOwnKek(f, 'globex');
    const a = newId();
    const b = newId();
    await f.km.addCollection(a, { name: 'docs', tenant: 'acme' });
    await f.km.addCollection(b, { name: 'docs', tenant: 'globex' });
    expect(f.km.collectionKeys(a).deks[0]?.wraps.map((w) => w.kek)).toEqual(['kek-acme']);
    expect(f.km.collectionKeys(b).deks[0]?.wraps.map((w) => w.kek)).toEqual(['kek-globex']);
    const lease = await f.km.leaseDek(a, 1);
    const view = lease.key;
    lease.release();

    await f.km.disableTenant('acme');
    // The cached DEK was evicted and zeroed at once.
    expect(Buffer.from(view).equals(Buffer.alloc(32))).toBe(true);
    await expect(f.km.leaseDek(a, 1)).rejects.toBeInstanceOf(KeyDisabledError);
    expect(() => f.km.assertUsable(a)).toThrow(KeyDisabledError);
    await expect(f.km.withDek(b, 1, () => 'ok')).resolves.toBe('ok');
    await expect(f.km.addCollection(newId(), { name: 'more', tenant: 'acme' })).rejects.toBeInstanceOf(KeyDisabledError);

    await f.km.enableTenant('acme');
    await expect(f.km.withDek(a, 1, () => 'ok')).resolves.toBe('ok');
    expect(f.events.filter((e) => e.action === 'disable' || e.action === 'enable').map((e) => [e.action, e.tenant, e.principal])).toEqual([
      ['disable', 'acme', 'test-suite'],
      ['enable', 'acme', 'test-suite'],
    ]);
    await f.km.close();
  });

  it('disables and enables one collection', async () => {
    const f = await setup();
    const c = newId();
    await f.km.addCollection(c, { name: 'c' });
    await f.km.disableCollection(c);
    await expect(f.km.leaseDek(c, 1)).rejects.toBeInstanceOf(KeyDisabledError);
    await f.km.close();
    const again = await KeyManager.open({ dir: f.dir, localKeyDir: f.keyDir });
    await expect(again.leaseDek(c, 1)).rejects.toBeInstanceOf(KeyDisabledError);
    await again.enableCollection(c);
    await expect(again.withDek(c, 1, () => 1)).resolves.toBe(1);
    await again.close();
  });

  it(
    'schedules, cancels and after the window crypto-shreds a tenant: ' + 'a copy of its files and of the old keyring cannot be opened',
    async () => {
      const f = await setup();
      await tenantWithOwnKek(f, 'acme');
      await tenantWithOwnKek(f, 'globex');
      const a = newId();
      const b = newId();
      await f.km.addCollection(a, { name: 'docs', tenant: 'acme' });
      await f.km.addCollection(b, { name: 'docs', tenant: 'globex' });
      const fileA = await sealedFile(f, a, 'a.vseg');
      const fileB = await sealedFile(f, b, 'b.vseg');

      await expect(f.km.scheduleTenantDeletion('acme', { days: 3 })).rejects.toBeInstanceOf(InvalidArgumentError);
      const t0 = new Date('2026-01-01T00:00:00Z');
      await f.km.scheduleTenantDeletion('acme', { days: 7, now: t0 });
      await expect(f.km.leaseDek(a, 1)).rejects.toBeInstanceOf(KeyPendingDeletionError);
      await f.km.cancelTenantDeletion('acme');
      await expect(f.km.withDek(a, 1, () => 'back')).resolves.toBe('back');

      const when = await f.km.scheduleTenantDeletion('acme', { now: t0 });
      expect(when.toISOString()).toBe('2026-01-31T00:00:00.000Z');
      // An attacker (or a careless backup) keeps the files and the keyring from before the deletion.
      const keyringCopy = await fs.readFile(join(f.dir, KEYRING_FILE));
      const fileCopy = await fs.readFile(fileA);

      expect((await f.km.shredDue({ now: new Date('2026-01-30T23:59:59Z') })).tenants).toEqual([]);
      const report = await f.km.shredDue({ now: new Date('2026-01-31T00:00:01Z') });
      expect(report.tenants).toEqual(['acme']);
      expect(report.collections).toEqual([a]);
      expect(report.keks).toEqual({ 'kek-acme': 'destroyed' });
      await expect(f.km.leaseDek(a, 1)).rejects.toBeInstanceOf(KeyDestroyedError);
      expect(f.km.tenant('acme').state).toBe('deleted');
      // B is intact.
      await f.km.withDek(b, 1, (dek) => readSegment(fileB, { storeId: f.storeId, collectionId: b }, () => dek));
      await f.km.close();

      // Restore the old keyring beside the copied file. As it is, it says the tenant is pending deletion;
      // edited to say enabled it no longer verifies; and the KEK its wraps need is gone either way.
      const forensic = tempDir('vs-forensic-');
      await fs.writeFile(join(forensic, KEYRING_FILE), keyringCopy);
      await fs.writeFile(join(forensic, 'a.vseg'), fileCopy);
      const old = await KeyManager.open({ dir: forensic, localKeyDir: f.keyDir });
      await expect(old.leaseDek(a, 1)).rejects.toBeInstanceOf(KeyPendingDeletionError);
      await expect(old.withDek(b, 1, () => 'b opens')).resolves.toBe('b opens');
      await old.close();
      await forgeRing(forensic, (ring) => {
        (ring.tenants['acme'] as { state: string }).state = 'enabled';
      });
      await expect(KeyManager.open({ dir: forensic, localKeyDir: f.keyDir })).rejects.toBeInstanceOf(CorruptDataError);
      const wrap = (await claimedRing(forensic)).collections[a]?.deks[0]?.wraps[0];
      if (!wrap) throw new Error('no wrap in the copy');
      const tenantKek = new LocalKekProvider({ keyId: wrap.keyId, keyDir: f.keyDir });
      await expect(
        tenantKek.unwrap(
          { provider: wrap.provider, keyId: wrap.keyId, blob: Buffer.from(wrap.blob, 'base64') },
          { storeId: f.storeId, collectionId: a, dekVersion: 1 },
        ),
      ).rejects.toBeInstanceOf(KeyDestroyedError);
    },
  );

  it('shreds a tenant that shared the store KEK by rotating it and destroying the old version', async () => {
    const f = await setup();
    await f.km.createTenant('shared'); // the store's KEK
    const a = newId();
    const other = newId();
    await f.km.addCollection(a, { name: 'a', tenant: 'shared' });
    await f.km.addCollection(other, { name: 'other' });
    const keyringCopy = await fs.readFile(join(f.dir, KEYRING_FILE));
    await f.km.scheduleTenantDeletion('shared', { days: 7, now: new Date(0) });
    const report = await f.km.shredDue({ now: new Date(8 * 86_400_000) });
    expect(report.sharedKeks).toEqual(['default']);
    expect(report.retiredVersions).toEqual({ default: ['1'] });
    await expect(f.km.withDek(other, 1, () => 'still here')).resolves.toBe('still here');
    await f.km.close();
    const forensic = tempDir('vs-forensic-');
    await fs.writeFile(join(forensic, KEYRING_FILE), keyringCopy);
    // The copy predates the schedule, yet the KEK version its wraps (and its MAC key) need was destroyed.
    await expect(KeyManager.open({ dir: forensic, localKeyDir: f.keyDir })).rejects.toBeInstanceOf(KeyDestroyedError);
  });
});

describe('DEK re-keying', () => {
  it('makes a new active version; old versions stay readable until destroyed; a minimum version can be set', async () => {
    const f = await setup();
    const c = newId();
    await f.km.addCollection(c, { name: 'c' });
    const v1 = await f.km.withDek(c, 1, (k) => Buffer.from(k));
    expect(await f.km.rekey(c)).toBe(2);
    expect(f.km.activeDekVersion(c)).toBe(2);
    const v2 = await f.km.withDek(c, 2, (k) => Buffer.from(k));
    expect(v2.equals(v1)).toBe(false);
    expect((await f.km.withDek(c, 1, (k) => Buffer.from(k))).equals(v1)).toBe(true);
    expect(f.km.collectionKeys(c).deks.map((d) => d.state)).toEqual(['retired', 'active']);
    await expect(f.km.destroyDekVersion(c, 2)).rejects.toBeInstanceOf(InvalidArgumentError);
    await f.km.setMinDecryptVersion(c, 2);
    await expect(f.km.leaseDek(c, 1)).rejects.toBeInstanceOf(KeyDisabledError);
    await f.km.destroyDekVersion(c, 1);
    expect(f.km.collectionKeys(c).deks[0]).toMatchObject({ state: 'destroyed', wraps: [] });
    await f.km.close();
  });

  it('reports rotations and re-keys that policies make due', async () => {
    const f = await setup();
    const c = newId();
    await f.km.addCollection(c, { name: 'c' });
    expect(f.km.dueWork(new Date(Date.now() + 400 * 86_400_000))).toEqual({ kekRotations: [], rekeys: [] });
    await f.km.setPolicy({ kekRotationDays: 90, dekRotationDays: 30 });
    expect(f.km.dueWork()).toEqual({ kekRotations: [], rekeys: [] });
    expect(f.km.dueWork(new Date(Date.now() + 31 * 86_400_000))).toEqual({ kekRotations: [], rekeys: [c] });
    expect(f.km.dueWork(new Date(Date.now() + 91 * 86_400_000))).toEqual({ kekRotations: ['default'], rekeys: [c] });
    await f.km.setPolicy({ dekMaxPages: 100 });
    await f.km.notePagesWritten(c, 99);
    expect(f.km.dueWork().rekeys).toEqual([]);
    await f.km.notePagesWritten(c, 1);
    expect(f.km.dueWork().rekeys).toEqual([c]);
    await f.km.rekey(c);
    expect(f.km.dueWork().rekeys).toEqual([]);
    await expect(f.km.setPolicy({ kekRotationDays: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await f.km.close();
  });
});

describe('several KEKs per DEK', () => {
  it('wraps every DEK under each attached KEK; any one of them opens the data', async () => {
    const f = await setup();
    const escrowId = `escrow-${f.storeId.slice(0, 8)}`;
    const escrowDir = tempDir('vs-escrow-');
    await LocalKekProvider.init({ keyId: escrowId, keyDir: escrowDir });
    const c = newId();
    await f.km.addCollection(c, { name: 'c' });
    const dek = await f.km.withDek(c, 1, (k) => Buffer.from(k));
    await f.km.addKek('escrow', { provider: 'local', keyId: escrowId, config: { keyDir: escrowDir } });
    expect(await f.km.attachKek('escrow')).toBe(1);
    const late = newId();
    await f.km.addCollection(late, { name: 'late' });
    expect(f.km.collectionKeys(late).deks[0]?.wraps.map((w) => w.kek)).toEqual(['default', 'escrow']);
    // The audit trail's key is wrapped like any DEK.
    (await f.km.systemKey('audit')).release();
    await f.km.close();

    // The store's own master key is lost: the escrow KEK still opens everything.
    await fs.rm(join(f.keyDir, `store-${f.storeId}`), { recursive: true });
    const keks = { escrow: { provider: 'local', keyId: escrowId, config: { keyDir: escrowDir } } };
    const again = await KeyManager.open({ dir: f.dir, localKeyDir: f.keyDir, keks });
    expect((await again.withDek(c, 1, (k) => Buffer.from(k))).equals(dek)).toBe(true);
    await again.withDek(late, 1, () => undefined);
    const health = await again.kekHealth();
    expect(health.find((h) => h.name === 'escrow')).toMatchObject({ reachable: true, state: 'enabled' });
    expect(health.find((h) => h.name === 'default')).toMatchObject({ reachable: true, state: 'destroyed' });
    await again.close();

    // With both gone it fails with a typed error.
    await fs.rm(join(escrowDir, escrowId), { recursive: true });
    await expect(KeyManager.open({ dir: f.dir, localKeyDir: f.keyDir, keks })).rejects.toBeInstanceOf(KeyDestroyedError);
  });

  it('detaches a KEK only while another wraps every DEK', async () => {
    const f = await setup();
    const c = newId();
    await f.km.addCollection(c, { name: 'c' });
    await expect(f.km.detachKek('default')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(f.km.attachKek('nope')).rejects.toBeInstanceOf(NotFoundError);
    const escrowDir = tempDir('vs-escrow-');
    await LocalKekProvider.init({ keyId: 'escrow', keyDir: escrowDir });
    await f.km.addKek('escrow', { provider: 'local', keyId: 'escrow', config: { keyDir: escrowDir } });
    await f.km.attachKek('escrow');
    expect(await f.km.detachKek('default')).toBe(1);
    expect(f.km.collectionKeys(c).deks[0]?.wraps.map((w) => w.kek)).toEqual(['escrow']);
    await f.km.rotateKek({ kek: 'escrow' });
    f.km.evict();
    await f.km.withDek(c, 1, () => undefined);
    await f.km.close();
  });
});
