import { join } from 'node:path';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupStore, restoreBackup, verifyBackup } from '../../src/backup/index.js';
import { KeyDisabledError, KeyPendingDeletionError, VectorsealError } from '../../src/errors.js';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import type { KekBinding, KekConfig, KeyAuditEvent } from '../../src/keys/key-manager.js';
import { openStore, type OpenStoreOptions, type Store } from '../../src/store/index.js';
import { ADMIN, REGION, startHarness, type Harness } from '../kms/helpers.js';
import { storeDirs } from '../helpers/store.js';
import { randomVectors } from '../store/helpers.js';

/** Two key services stand for two regions, each with its own key. */
let east: Harness;
let west: Harness;
let eastKey: string;
let westKey: string;

beforeAll(async () => {
  east = await startHarness();
  west = await startHarness();
  eastKey = (await east.client().send(new CreateKeyCommand({ Description: 'east' }))).KeyMetadata!.Arn!;
  westKey = (await west.client().send(new CreateKeyCommand({ Description: 'west' }))).KeyMetadata!.Arn!;
});
afterAll(async () => {
  await east?.cleanup();
  await west?.cleanup().catch(() => undefined);
});

// The endpoint comes from the caller's KEK configuration (never from the keyring); credentials from here.
const providers = {
  'aws-kms': (b: KekBinding, _name: string, c: KekConfig | undefined) =>
    new AwsKmsKekProvider({
      keyId: b.keyId,
      endpoint: c?.config?.['endpoint'] as string,
      region: REGION,
      credentials: ADMIN,
      maxAttempts: 1,
      retryBaseDelayMs: 1,
    }),
};
const eastEntry = (): KekConfig => ({ provider: 'aws-kms', keyId: eastKey, config: { endpoint: east.service.url, region: REGION } });
const westEntry = (): KekConfig => ({ provider: 'aws-kms', keyId: westKey, config: { endpoint: west.service.url, region: REGION } });

describe('DEKs wrapped under two KEKs in two key services', () => {
  it('works through either; with one disabled or unreachable it works through the other; with both gone it fails typed', async () => {
    const d = storeDirs();
    const events: KeyAuditEvent[] = [];
    const options: OpenStoreOptions = {
      dir: d.dir,
      stagingDir: d.stagingDir,
      providers,
      keks: { default: eastEntry(), west: westEntry() },
      audit: (e) => events.push(e),
    };
    let store: Store = await openStore({
      ...options,
      create: true,
      keys: { provider: 'aws-kms', keyId: eastKey, config: eastEntry().config! },
    });
    const docs = await store.createCollection('docs', { dim: 8 });
    const v = randomVectors(200, 8, 21);
    await docs.upsert(v.slice(0, 100).map((vector, i) => ({ id: `d${i}`, vector, metadata: { i } })));

    await store.keys.addKek('west', westEntry());
    const wrapped = await store.keys.attachKek('west');
    expect(wrapped).toBeGreaterThanOrEqual(1); // the collection's DEK (and any store key)
    for (const w of Object.values(store.keys.keyring.collections).flatMap((c) => c.deks.flatMap((x) => x.wraps)))
      expect(w.provider).toBe('aws-kms');
    expect(store.keys.keyring.collections[docs.info.id]!.deks[0]!.wraps.map((w) => w.kek)).toEqual(['default', 'west']);
    await docs.flush();
    const q = v[3]!;

    // East disabled: the DEK cache is emptied, the next key use falls through to west.
    await east.client().send(new DisableKeyCommand({ KeyId: eastKey }));
    store.keys.evict();
    events.length = 0;
    await docs.upsert(v.slice(100, 150).map((vector, i) => ({ id: `e${i}`, vector })));
    await docs.flush();
    const unwraps = events.filter((e) => e.action === 'unwrap');
    expect(unwraps[0]).toMatchObject({ kek: 'default', outcome: 'error', error: 'VS_KEY_DISABLED' });
    expect(unwraps[1]).toMatchObject({ kek: 'west', outcome: 'ok' });
    const health = await store.keys.kekHealth();
    expect(health.find((h) => h.name === 'default')).toMatchObject({ reachable: true, state: 'disabled' });
    expect(health.find((h) => h.name === 'west')).toMatchObject({ reachable: true, state: 'enabled' });
    const before = docs.search(q, 5);
    await store.close();

    // The store opens through west alone, results unchanged.
    store = await openStore(options);
    expect(store.collection('docs').count).toBe(150);
    expect(store.collection('docs').search(q, 5)).toEqual(before);
    await store.close();

    // West unreachable (its service is down), east enabled again: works through east; west is reported unreachable.
    await east.client().send(new EnableKeyCommand({ KeyId: eastKey }));
    await west.service.close();
    events.length = 0;
    store = await openStore(options);
    expect(store.collection('docs').count).toBe(150);
    const h2 = await store.keys.kekHealth();
    expect(h2.find((h) => h.name === 'west')).toMatchObject({ reachable: false, error: 'VS_PROVIDER_UNAVAILABLE' });
    await store.close();

    // Both gone (east disabled, west down): a typed error, no data.
    await east.client().send(new DisableKeyCommand({ KeyId: eastKey }));
    events.length = 0;
    const err = await openStore(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeyDisabledError);
    expect(events.filter((e) => e.action === 'unwrap').map((e) => [e.kek, e.outcome, e.error])).toEqual([
      ['default', 'error', 'VS_KEY_DISABLED'],
      ['west', 'error', 'VS_PROVIDER_UNAVAILABLE'],
    ]);

    // West back but scheduled for deletion, east still disabled: still typed.
    await west.restart();
    await west.client().send(new ScheduleKeyDeletionCommand({ KeyId: westKey, PendingWindowInDays: 7 }));
    const err2 = await openStore(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err2).toBeInstanceOf(VectorsealError);
    expect([KeyDisabledError, KeyPendingDeletionError].some((C) => err2 instanceof C)).toBe(true);
  });

  it('restores a backup with its DEKs rewrapped under a key in another region; the old key is no longer needed', async () => {
    const kms = east.client();
    const a = (await kms.send(new CreateKeyCommand({ Description: 'primary' }))).KeyMetadata!.Arn!;
    await west.restart().catch(() => undefined);
    const b = (await west.client().send(new CreateKeyCommand({ Description: 'dr region' }))).KeyMetadata!.Arn!;
    const d = storeDirs();
    const keks = {
      default: { provider: 'aws-kms', keyId: a, config: { endpoint: east.service.url, region: REGION } },
      dr: { provider: 'aws-kms', keyId: b, config: { endpoint: west.service.url, region: REGION } },
    };
    const store = await openStore({ dir: d.dir, create: true, stagingDir: d.stagingDir, providers, keks, keys: keks.default });
    const c = await store.createCollection('c', { dim: 8 });
    const v = randomVectors(120, 8, 5);
    await c.upsert(v.map((vector, i) => ({ id: `x${i}`, vector, metadata: { i } })));
    await c.flush();
    const want = c.search(v[9]!, 7);
    const to = join(d.root, 'backup');
    await backupStore(store, { to });
    await store.close();

    const dest = join(d.root, 'dr');
    const rep = await restoreBackup({
      from: to,
      dir: dest,
      providers,
      keks,
      stagingDir: d.stagingDir,
      rewrap: { name: 'dr', entry: { provider: 'aws-kms', keyId: b, config: { endpoint: west.service.url, region: REGION } } },
    });
    expect(rep.rewrap).toMatchObject({ kek: 'dr', detached: ['default'] });
    expect(rep.rewrap!.attached).toBeGreaterThanOrEqual(2); // the collection's DEK and the backup key

    // The primary key is disabled: the restored store does not need it.
    await kms.send(new DisableKeyCommand({ KeyId: a }));
    const restored = await openStore({ dir: dest, stagingDir: d.stagingDir, providers, keks });
    try {
      const ring = restored.keys.keyring;
      expect(ring.defaultKeks).toEqual(['dr']);
      for (const col of [...Object.values(ring.collections), ...Object.values(ring.system ?? {})]) {
        for (const dek of col.deks) expect(dek.wraps.map((w) => w.keyId)).toEqual([b]);
      }
      expect(restored.collection('c').search(v[9]!, 7)).toEqual(want);
      // A backup of the restored store verifies under the new key alone.
      const to2 = join(d.root, 'backup2');
      await backupStore(restored, { to: to2 });
      await expect(verifyBackup(to2, { withKeys: true, providers, keks })).resolves.toMatchObject({ mac: 'verified' });
    } finally {
      await restored.close();
    }
    // ...while the original backup needs the primary key, which is disabled.
    await expect(verifyBackup(to, { withKeys: true, providers, keks })).rejects.toBeInstanceOf(KeyDisabledError);
  });
});
