import { describe, expect, it } from 'vitest';
import { KeyDisabledError, KeyPendingDeletionError } from '../../src/errors.js';
import { storeDirs } from '../helpers/store.js';
import { auditEntries, openLifecycleStore, vectorOf } from './helpers.js';

const ids = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}-${i}`);

describe('tenants: disable and enable', () => {
  it('disabling tenant A stops A at once (audited as denied) and leaves B untouched; enabling restores A', async () => {
    const d = storeDirs('vs-life-');
    const store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    await store.createTenant('globex', { kek: { provider: 'local' } });
    const a = await store.createCollection('a-docs', { dim: 8, tenant: 'acme' });
    const b = await store.createCollection('b-docs', { dim: 8, tenant: 'globex' });
    // Each tenant's DEKs are wrapped under its own KEK only.
    const ring = store.keys.keyring;
    expect(ring.collections[a.info.id]!.deks[0]!.wraps.map((w) => w.kek)).toEqual(['tenant-acme']);
    expect(ring.collections[b.info.id]!.deks[0]!.wraps.map((w) => w.kek)).toEqual(['tenant-globex']);
    expect(ring.keks['tenant-acme']!.keyId).not.toBe(ring.keks['tenant-globex']!.keyId);

    await a.upsert(ids(20, 'a').map((id, i) => ({ id, vector: vectorOf(i), metadata: { n: i } })));
    await a.flush();
    await a.upsert({ id: 'a-unflushed', vector: vectorOf(99), metadata: { n: 99 } });
    await b.upsert(ids(20, 'b').map((id, i) => ({ id, vector: vectorOf(i, 8, 0.5) })));

    await store.disableTenant('acme');
    expect(a.isLoaded).toBe(false);
    expect(() => a.search(vectorOf(1), 3)).toThrow(KeyDisabledError);
    expect(() => a.get('a-1')).toThrow(KeyDisabledError);
    await expect(a.upsert({ id: 'x', vector: vectorOf(1) })).rejects.toBeInstanceOf(KeyDisabledError);
    await expect(a.flush()).rejects.toBeInstanceOf(KeyDisabledError);
    await expect(a.delete('a-1')).rejects.toMatchObject({ code: 'VS_KEY_DISABLED' });
    // B goes on as before.
    expect(b.search(vectorOf(3, 8, 0.5), 1)[0]!.id).toBe('b-3');
    await b.upsert({ id: 'b-new', vector: vectorOf(50, 8, 0.5) });
    await b.flush();
    expect(b.get('b-new')).toBeDefined();

    const denied = auditEntries(d.dir).filter((e) => e.action === 'denied');
    expect(denied.length).toBeGreaterThanOrEqual(5);
    expect(
      denied.every((e) => e.outcome === 'denied' && e.tenant === 'acme' && e.collectionId === a.info.id && e.error === 'VS_KEY_DISABLED'),
    ).toBe(true);
    expect(denied.map((e) => e.details?.['operation'])).toEqual(expect.arrayContaining(['search', 'get', 'upsert', 'flush', 'delete']));
    expect(denied.every((e) => e.principal === 'app:test')).toBe(true);

    await store.enableTenant('acme');
    expect(a.isLoaded).toBe(true);
    expect(a.count).toBe(21);
    expect(a.get('a-unflushed')!.metadata).toEqual({ n: 99 });
    expect(a.search(vectorOf(7), 1)[0]!.id).toBe('a-7');
    await a.upsert({ id: 'a-after', vector: vectorOf(77) });
    const actions = auditEntries(d.dir).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['create-tenant', 'add-kek', 'generate', 'disable', 'enable']));
  });

  it("a store with a disabled tenant opens; the tenant's collections stay unloaded until enabled", async () => {
    const d = storeDirs('vs-life-');
    let store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    const a = await store.createCollection('a-docs', { dim: 8, tenant: 'acme' });
    const b = await store.createCollection('plain', { dim: 8 });
    await a.upsert(ids(5, 'a').map((id, i) => ({ id, vector: vectorOf(i) })));
    await b.upsert({ id: 'p', vector: vectorOf(1) });
    await store.disableTenant('acme');
    await store.close();

    store = await openLifecycleStore(d);
    expect(store.collection('a-docs').isLoaded).toBe(false);
    expect(() => store.collection('a-docs').search(vectorOf(1), 1)).toThrow(KeyDisabledError);
    expect(store.collection('plain').get('p')).toBeDefined();
    expect(store.listCollections().find((c) => c.name === 'a-docs')!.count).toBe(0);
    await store.enableTenant('acme');
    expect(store.collection('a-docs').count).toBe(5);
  });

  it("disables and enables one collection, leaving its tenant's other collections alone", async () => {
    const d = storeDirs('vs-life-');
    const store = await openLifecycleStore(d);
    await store.createTenant('acme');
    const one = await store.createCollection('one', { dim: 8, tenant: 'acme' });
    const two = await store.createCollection('two', { dim: 8, tenant: 'acme' });
    await one.upsert({ id: 'o', vector: vectorOf(1) });
    await two.upsert({ id: 't', vector: vectorOf(2) });
    await store.disableCollection('one');
    expect(() => one.get('o')).toThrow(KeyDisabledError);
    expect(two.get('t')).toBeDefined();
    await store.enableCollection('one');
    expect(one.get('o')).toBeDefined();
  });

  it("a scheduled deletion refuses the tenant's keys at once; cancelling restores them", async () => {
    const d = storeDirs('vs-life-');
    const store = await openLifecycleStore(d);
    await store.createTenant('acme', { kek: { provider: 'local' } });
    const a = await store.createCollection('a', { dim: 8, tenant: 'acme' });
    await a.upsert({ id: 'x', vector: vectorOf(1) });
    await expect(store.scheduleTenantDeletion('acme', { days: 3 })).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
    const when = await store.scheduleTenantDeletion('acme', { days: 7 });
    expect(when.getTime()).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    expect(() => a.get('x')).toThrow(KeyPendingDeletionError);
    await store.cancelTenantDeletion('acme');
    expect(a.get('x')).toBeDefined();
    const actions = auditEntries(d.dir).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['schedule-deletion', 'cancel-deletion']));
  });
});
