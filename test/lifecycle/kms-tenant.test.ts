import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyDisabledError } from '../../src/errors.js';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import type { KekBinding } from '../../src/keys/provider-registry.js';
import { collectionDir } from '../../src/store/collection.js';
import { checkShredded } from '../../src/store/shred-check.js';
import { ADMIN, REGION, startHarness, type Harness } from '../kms/helpers.js';
import { storeDirs } from '../helpers/store.js';
import { DAY, auditEntries, openLifecycleStore, vectorOf } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.cleanup());

/** Builds aws-kms providers against the key service on loopback with the test's credentials. */
const providers = {
  'aws-kms': (entry: KekBinding) =>
    new AwsKmsKekProvider({
      keyId: entry.keyId,
      endpoint: h.service.url,
      region: REGION,
      credentials: ADMIN,
      maxAttempts: 1,
      retryBaseDelayMs: 1,
    }),
};

describe('a tenant whose KEK lives in the key service', () => {
  it(
    'a KEK disabled in the KMS stops the tenant once the DEK cache TTL passes; ' +
      'enabling it there restores the tenant; the local tenant is untouched',
    async () => {
      const d = storeDirs('vs-life-');
      let clock = Date.now();
      const store = await openLifecycleStore(d, { providers, keyCache: { ttlMs: 60_000, now: () => clock } });
      const kms = h.client();
      const arn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
      await store.createTenant('globex', { kek: { provider: 'aws-kms', keyId: arn, config: { region: REGION, endpoint: h.service.url } } });
      await store.createTenant('acme', { kek: { provider: 'local' } });
      const g = await store.createCollection('g', { dim: 8, tenant: 'globex' });
      const a = await store.createCollection('a', { dim: 8, tenant: 'acme' });
      for (const c of [g, a]) {
        await c.upsert(Array.from({ length: 10 }, (_, i) => ({ id: `r-${i}`, vector: vectorOf(i) })));
        await c.flush();
      }
      expect(store.keys.collectionKeys(g.info.id).deks[0]!.wraps.map((w) => [w.provider, w.keyId])).toEqual([['aws-kms', arn]]);

      await kms.send(new DisableKeyCommand({ KeyId: arn }));
      // Within the TTL the cached DEK still serves (the documented bound).
      expect(g.search(vectorOf(2), 1)[0]!.id).toBe('r-2');
      clock += 61_000;
      await expect(g.upsert({ id: 'late', vector: vectorOf(50) })).rejects.toBeInstanceOf(KeyDisabledError);
      expect(() => g.search(vectorOf(2), 1)).toThrow(KeyDisabledError);
      expect(() => g.get('r-1')).toThrow(KeyDisabledError);
      // The local tenant re-validates against its own KEK and goes on.
      await a.upsert({ id: 'late', vector: vectorOf(60) });
      expect(a.search(vectorOf(3), 1)[0]!.id).toBe('r-3');
      const events = auditEntries(d.dir);
      expect(
        events.some((e) => e.action === 'unwrap' && e.outcome === 'error' && e.error === 'VS_KEY_DISABLED' && e.tenant === 'globex'),
      ).toBe(true);
      expect(events.some((e) => e.action === 'denied' && e.tenant === 'globex' && e.details?.['operation'] === 'search')).toBe(true);

      await kms.send(new EnableKeyCommand({ KeyId: arn }));
      await g.upsert({ id: 'late', vector: vectorOf(50) });
      expect(g.search(vectorOf(2), 1)[0]!.id).toBe('r-2');
      expect(g.count).toBe(11);
    },
  );

  it(
    'shredding the tenant schedules its KMS key for deletion; copies of its files and the old keyring ' + 'are then unrecoverable',
    async () => {
      const d = storeDirs('vs-life-');
      const store = await openLifecycleStore(d, { providers });
      const kms = h.client();
      const arn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
      await store.createTenant('globex', { kek: { provider: 'aws-kms', keyId: arn, config: { region: REGION, endpoint: h.service.url } } });
      const g = await store.createCollection('g', { dim: 8, tenant: 'globex' });
      await g.upsert(Array.from({ length: 10 }, (_, i) => ({ id: `r-${i}`, vector: vectorOf(i) })));
      await g.flush();
      const copy = join(d.root, 'copy-g');
      cpSync(collectionDir(d.dir, g.info.id), copy, { recursive: true });
      const oldKeyring = join(d.root, 'KEYRING.before');
      cpSync(join(d.dir, 'KEYRING'), oldKeyring);
      const before = await checkShredded({ paths: [copy], keyrings: [oldKeyring], providers });
      expect(before.every((f) => f.status === 'OPENABLE')).toBe(true);

      const t0 = new Date();
      await store.scheduleTenantDeletion('globex', { days: 7, now: t0 });
      const report = await store.maintain({ now: new Date(t0.getTime() + 8 * DAY) });
      expect(report.shredded.keks).toEqual({ 'tenant-globex': 'scheduled' });
      expect((await kms.send(new DescribeKeyCommand({ KeyId: arn }))).KeyMetadata!.KeyState).toBe('PendingDeletion');
      const after = await checkShredded({ paths: [copy], keyrings: [join(d.dir, 'KEYRING'), oldKeyring], providers });
      expect(after.length).toBe(before.length);
      expect(after.every((f) => f.status === 'unrecoverable')).toBe(true);
      expect(after[0]!.attempts.join('\n')).toMatch(/VS_KEY_PENDING_DELETION/);
    },
  );
});
