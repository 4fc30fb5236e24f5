import { describe, expect, it } from 'vitest';
import { storeDirs } from '../helpers/store.js';
import { DAY, auditEntries, openLifecycleStore, vectorOf } from './helpers.js';

describe('automatic rotation by policy through maintain', () => {
  it('rotates KEKs and re-keys collections when their periods pass (injected clock), each run audited', async () => {
    const d = storeDirs('vs-life-');
    const store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    const plain = await store.createCollection('plain', { dim: 8 });
    const a = await store.createCollection('a', { dim: 8, tenant: 'acme' });
    for (const c of [plain, a]) {
      await c.upsert(Array.from({ length: 10 }, (_, i) => ({ id: `r-${i}`, vector: vectorOf(i), metadata: { i } })));
      await c.flush();
    }
    await store.setPolicy({ kekRotationDays: 90, dekRotationDays: 30 });
    await store.setPolicy({ kekRotationDays: 10 }, { tenant: 'acme' }); // acme: KEK every 10 days, no DEK rotation
    const t0 = Date.now();
    const kekVersion = (name: string) => store.keys.keyring.keks[name]!.currentVersion;
    const v0 = { store: kekVersion('default'), acme: kekVersion('tenant-acme') };

    const r1 = await store.maintain({ now: new Date(t0 + 5 * DAY) });
    expect(r1.kekRotations).toEqual([]);
    expect(r1.rekeys).toEqual([]);

    const r2 = await store.maintain({ now: new Date(t0 + 11 * DAY) });
    expect(r2.kekRotations).toEqual(['tenant-acme']);
    expect(kekVersion('tenant-acme')).not.toBe(v0.acme);
    expect(kekVersion('default')).toBe(v0.store);

    const r3 = await store.maintain({ now: new Date(t0 + 31 * DAY) });
    expect(r3.rekeys).toEqual(['plain']);
    expect(r3.kekRotations).toEqual(['tenant-acme']);
    expect(r3.reencrypted).toEqual([{ collection: 'plain', groups: 1, destroyedVersions: [1] }]);
    expect(store.keys.activeDekVersion(plain.info.id)).toBe(2);
    expect(store.keys.activeDekVersion(a.info.id)).toBe(1);

    // Nothing more is due at the same time: the rotations were recorded at the injected time.
    const r4 = await store.maintain({ now: new Date(t0 + 31 * DAY) });
    expect([r4.kekRotations, r4.rekeys, r4.reencrypted]).toEqual([[], [], []]);

    const r5 = await store.maintain({ now: new Date(t0 + 91 * DAY) });
    expect(r5.kekRotations.sort()).toEqual(['default', 'tenant-acme']);
    expect(r5.rekeys).toEqual(['plain']);
    expect(kekVersion('default')).not.toBe(v0.store);
    for (const c of [plain, a]) expect(c.get('r-3')!.metadata).toEqual({ i: 3 });

    const runs = auditEntries(d.dir).filter((e) => e.action === 'maintain');
    expect(runs.length).toBe(5);
    expect(runs.every((e) => e.outcome === 'ok' && e.principal === 'app:test')).toBe(true);
    expect(runs.map((e) => e.details?.['kekRotationCount'])).toEqual([0, 1, 1, 0, 2]);
    expect(auditEntries(d.dir).filter((e) => e.action === 'rotate-kek').length).toBe(4);
    expect(auditEntries(d.dir).filter((e) => e.action === 'rekey').length).toBe(2);
    const policies = auditEntries(d.dir).filter((e) => e.action === 'set-policy');
    expect(policies.map((e) => e.details)).toEqual([{ kekRotationDayCount: 90, dekRotationDayCount: 30 }, { kekRotationDayCount: 10 }]);
  });

  it('re-keys a collection once its page-write limit is reached, and when due on open', async () => {
    const d = storeDirs('vs-life-');
    let store = await openLifecycleStore(d);
    const c = await store.createCollection('c', { dim: 8 });
    await store.setPolicy({ dekMaxPages: 6 });
    await c.upsert({ id: 'a', vector: vectorOf(1) });
    await c.flush(); // vectors, metadata and index: 3 pages
    expect((await store.maintain()).rekeys).toEqual([]);
    await c.upsert({ id: 'b', vector: vectorOf(2) });
    await c.flush(); // 6 pages
    await store.close();
    // Due when the store opens: maintenance runs then.
    store = await openLifecycleStore(d);
    expect(store.keys.activeDekVersion(store.collection('c').info.id)).toBe(2);
    expect(store.keys.collectionKeys(store.collection('c').info.id).deks.map((x) => x.state)).toEqual(['destroyed', 'active']);
    expect(store.collection('c').get('a')).toBeDefined();
    expect(auditEntries(d.dir).filter((e) => e.action === 'maintain').length).toBe(2);
  });
});
