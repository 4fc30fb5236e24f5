import { AlreadyExistsError, InvalidArgumentError, KeyDestroyedError, KeyPendingDeletionError, NotFoundError } from '../errors.js';
import type { KeyAuditEvent } from './key-audit.js';
import type { KeyCore } from './key-core.js';
import type { RotationPolicy, TenantEntry } from './keyring-file.js';

/**
 * Tenants in the keyring: each has its own KEK list (default: the store's)
 * and a state (enabled, disabled, pending deletion, deleted) that every use
 * of its collections' keys is checked against.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Throws unless `tenant` is a tenant name; call before any side effect. */
export function checkTenantName(tenant: unknown): asserts tenant is string {
  if (typeof tenant !== 'string' || !NAME.test(tenant)) {
    throw new InvalidArgumentError('tenant name expected 1-64 characters [A-Za-z0-9._-] starting with a letter or digit');
  }
}

export function tenantEntry(core: KeyCore, tenant: string): TenantEntry {
  const t = Object.prototype.hasOwnProperty.call(core.ring.data.tenants, tenant) ? core.ring.data.tenants[tenant] : undefined;
  if (!t) throw new NotFoundError(`no tenant "${typeof tenant === 'string' ? tenant.slice(0, 64) : typeof tenant}"`);
  return t;
}

export async function createTenant(
  core: KeyCore,
  tenant: string,
  options: { keks?: string[]; policy?: RotationPolicy } = {},
): Promise<TenantEntry> {
  checkTenantName(tenant);
  return core.serialized(async () => {
    const data = core.ring.data;
    if (Object.prototype.hasOwnProperty.call(data.tenants, tenant)) throw new AlreadyExistsError(`tenant "${tenant}" exists`);
    const keks = options.keks ?? data.defaultKeks;
    for (const k of keks) if (!Object.prototype.hasOwnProperty.call(data.keks, k)) throw new NotFoundError(`no KEK named "${k}"`);
    if (keks.length === 0) throw new InvalidArgumentError('a tenant needs at least one KEK');
    const entry: TenantEntry = {
      keks: [...keks],
      state: 'enabled',
      createdAt: new Date().toISOString(),
      ...(options.policy ? { policy: { ...options.policy } } : {}),
    };
    await core.ring.commit([{ k: 't', id: tenant, v: entry }]);
    return entry;
  });
}

/** Collection ids keyed under a tenant. */
export function tenantCollections(core: KeyCore, tenant: string): string[] {
  return Object.entries(core.ring.data.collections)
    .filter(([, c]) => c.tenant === tenant)
    .map(([id]) => id);
}

/** Changes one tenant entry; its collections' cached DEKs are evicted. */
export async function updateTenant(
  core: KeyCore,
  tenant: string,
  action: KeyAuditEvent['action'],
  change: (t: TenantEntry) => void,
): Promise<void> {
  await core.serialized(async () => {
    const t = { ...tenantEntry(core, tenant) };
    change(t);
    await core.ring.commit([{ k: 't', id: tenant, v: t }]);
    for (const cid of tenantCollections(core, tenant)) core.deks.evict(cid);
    core.audit.emit({ action, outcome: 'ok', tenant });
  });
}

export function disableTenant(core: KeyCore, tenant: string): Promise<void> {
  return updateTenant(core, tenant, 'disable', (t) => {
    if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
    if (t.state === 'pending-deletion') t.stateBeforeDeletion = 'disabled';
    else t.state = 'disabled';
  });
}

export function enableTenant(core: KeyCore, tenant: string): Promise<void> {
  return updateTenant(core, tenant, 'enable', (t) => {
    if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
    if (t.state === 'pending-deletion') throw new KeyPendingDeletionError(`tenant "${tenant}" is scheduled for deletion; cancel it first`);
    t.state = 'enabled';
  });
}

/** Schedules a tenant's crypto-shredding `days` (7-30, default 30) from `now`; its keys are unusable meanwhile. */
export async function scheduleTenantDeletion(core: KeyCore, tenant: string, options: { days?: number; now?: Date } = {}): Promise<Date> {
  const days = options.days ?? 30;
  if (!Number.isInteger(days) || days < 7 || days > 30)
    throw new InvalidArgumentError(`deletion window expected an integer number of days in 7..30, got ${days}`);
  const when = new Date((options.now ?? new Date()).getTime() + days * 86_400_000);
  await updateTenant(core, tenant, 'schedule-deletion', (t) => {
    if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
    if (t.state !== 'pending-deletion') t.stateBeforeDeletion = t.state;
    t.state = 'pending-deletion';
    t.deleteAfter = when.toISOString();
  });
  return when;
}

/** Cancels a scheduled deletion; the tenant returns to the state it had. */
export function cancelTenantDeletion(core: KeyCore, tenant: string): Promise<void> {
  return updateTenant(core, tenant, 'cancel-deletion', (t) => {
    if (t.state !== 'pending-deletion') throw new InvalidArgumentError(`tenant "${tenant}" is not scheduled for deletion`);
    t.state = t.stateBeforeDeletion ?? 'enabled';
    delete t.stateBeforeDeletion;
    delete t.deleteAfter;
  });
}
