import { AlreadyExistsError, errorCode, InvalidArgumentError, KeyDisabledError, NotFoundError } from '../errors.js';
import { checkKekName, type KekConfig } from './kek-config.js';
import { cloneKeys, keySets, type KeyCore } from './key-core.js';
import type { KekEntry } from './keyring-file.js';
import type { KeyringOp } from './keyring-log.js';
import { toStored, wrapMacKey } from './keyring-mac-key.js';

/**
 * The KEK set of a store: KEKs registered by name and identity, the store's
 * (or a tenant's) default KEKs, and wrapping every affected DEK under a KEK
 * attached later. How to reach each KEK is the caller's configuration; the
 * keyring only binds names to keys.
 */

/** Registers a KEK under a name (checked by one provider call); `config` is this process's way to reach it. */
export async function addKek(
  core: KeyCore,
  name: string,
  entry: { provider: string; keyId: string; tenant?: string; config?: Record<string, string> },
): Promise<void> {
  checkKekName(name);
  await core.serialized(async () => {
    if (Object.prototype.hasOwnProperty.call(core.ring.data.keks, name)) throw new AlreadyExistsError(`a KEK named "${name}" exists`);
    const binding = { provider: entry.provider, keyId: entry.keyId };
    // Named by the caller now, so configured for this process; a local KEK without settings is found in the caller's key directory.
    if (entry.config !== undefined || (entry.provider !== 'local' && !core.registry.isConfigured(name, binding))) {
      const config: KekConfig = { ...binding, ...(entry.config === undefined ? {} : { config: entry.config }) };
      core.registry.configure(name, config);
    }
    const provider = await core.registry.make(name, binding);
    const desc = await provider.describe();
    if (desc.state !== 'enabled') {
      await provider.close();
      throw new KeyDisabledError(`KEK "${name}" is ${desc.state}`);
    }
    const kek: KekEntry = {
      ...binding,
      createdAt: new Date().toISOString(),
      ...(entry.tenant === undefined ? {} : { tenant: entry.tenant }),
      ...(desc.currentVersion === undefined ? {} : { currentVersion: desc.currentVersion }),
    };
    core.registry.set(name, provider);
    await core.ring.commit([{ k: 'k', id: name, v: kek }]);
    core.audit.emit({ action: 'add-kek', outcome: 'ok', kek: name, keyId: entry.keyId });
  });
}

/**
 * Adds a KEK to the store's defaults (or a tenant's) and wraps every
 * affected DEK under it too, so any one of the KEKs can open the data; a
 * store default also wraps the keyring MAC key. Data files are not touched.
 */
export async function attachKek(core: KeyCore, kekName: string, options: { tenant?: string } = {}): Promise<number> {
  return core.serialized(async () => {
    const ring = core.ring;
    if (!Object.prototype.hasOwnProperty.call(ring.data.keks, kekName)) throw new NotFoundError(`no KEK named "${kekName}"`);
    const ops: KeyringOp[] = [];
    let tenantEntry = options.tenant === undefined ? undefined : ownTenant(core, options.tenant);
    if (tenantEntry) {
      if (!tenantEntry.keks.includes(kekName)) tenantEntry = { ...tenantEntry, keks: [...tenantEntry.keks, kekName] };
      ops.push({ k: 't', id: options.tenant as string, v: tenantEntry });
    } else {
      const root = ring.root();
      if (!root.defaultKeks.includes(kekName)) root.defaultKeks.push(kekName);
      ops.push({ k: 'r', v: root });
    }
    const provider = await core.provider(kekName);
    let wrapped = 0;
    for (const [cid, col, kind] of keySets(ring.data)) {
      if (col.tenant !== options.tenant) continue;
      const next = cloneKeys(col);
      if (!next.keks.includes(kekName)) next.keks.push(kekName);
      for (const d of next.deks) {
        if (d.state === 'destroyed' || d.wraps.some((w) => w.kek === kekName)) continue;
        const dek = await core.deks.lease(cid, d.version, { usable: false }).then((l) => {
          try {
            return Buffer.from(l.key);
          } finally {
            l.release();
          }
        });
        try {
          const w = await core.audit.audited({ action: 'wrap', collectionId: cid, kek: kekName, dekVersion: d.version }, () =>
            provider.wrap(dek, core.context(cid, d.version)),
          );
          d.wraps.push(toStored(kekName, w));
          wrapped += 1;
        } finally {
          dek.fill(0);
        }
      }
      ops.push({ k: kind, id: cid, v: next });
    }
    if (options.tenant === undefined && !ring.data.macKey.some((w) => w.kek === kekName)) {
      const key = await ring.withMacKey((k) => wrapMacKey(k, ring.data.storeId, [kekName], (n) => core.provider(n)));
      await ring.commitAsCheckpoint(ops, [...ring.data.macKey, ...key]);
    } else {
      await ring.commitAsCheckpoint(ops);
    }
    core.audit.emit({
      action: 'add-kek',
      outcome: 'ok',
      kek: kekName,
      ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
    });
    return wrapped;
  });
}

/** Removes a KEK from the defaults (or a tenant's) and drops its wraps; every DEK (and the MAC key) must keep another. */
export async function detachKek(core: KeyCore, kekName: string, options: { tenant?: string } = {}): Promise<number> {
  return core.serialized(async () => {
    const ring = core.ring;
    const ops: KeyringOp[] = [];
    const list = options.tenant === undefined ? ring.root().defaultKeks : [...ownTenant(core, options.tenant).keks];
    if (!list.includes(kekName)) throw new NotFoundError(`KEK "${kekName}" is not attached here`);
    if (list.length === 1) throw new InvalidArgumentError(`KEK "${kekName}" is the only one; attach another first`);
    list.splice(list.indexOf(kekName), 1);
    if (options.tenant === undefined) ops.push({ k: 'r', v: { ...ring.root(), defaultKeks: list } });
    else ops.push({ k: 't', id: options.tenant, v: { ...ownTenant(core, options.tenant), keks: list } });
    let dropped = 0;
    for (const [cid, col, kind] of keySets(ring.data)) {
      if (col.tenant !== options.tenant) continue;
      const next = cloneKeys(col);
      next.keks = next.keks.filter((k) => k !== kekName);
      for (const d of next.deks) {
        const kept = d.wraps.filter((w) => w.kek !== kekName);
        if (d.state !== 'destroyed' && kept.length === 0)
          throw new InvalidArgumentError(`DEK version ${d.version} is wrapped only under "${kekName}"`);
        dropped += d.wraps.length - kept.length;
        d.wraps = kept;
      }
      ops.push({ k: kind, id: cid, v: next });
    }
    const macKey = options.tenant === undefined ? ring.data.macKey.filter((w) => w.kek !== kekName) : undefined;
    if (macKey && macKey.length === 0) throw new InvalidArgumentError(`the keyring MAC key is wrapped only under "${kekName}"`);
    await ring.commitAsCheckpoint(ops, macKey);
    core.audit.emit({ action: 'remove-kek', outcome: 'ok', kek: kekName });
    return dropped;
  });
}

/** Asks every KEK's provider for its state; an unreachable or unconfigured one is reported, not thrown. */
export async function kekHealth(
  core: KeyCore,
): Promise<
  { name: string; provider: string; keyId: string; reachable: boolean; state?: string; currentVersion?: string; error?: string }[]
> {
  return Promise.all(
    Object.entries(core.ring.data.keks).map(async ([name, entry]) => {
      const base = { name, provider: entry.provider, keyId: entry.keyId };
      if (entry.state === 'destroyed') return { ...base, reachable: false, state: 'destroyed' };
      try {
        const desc = await (await core.provider(name)).describe();
        return {
          ...base,
          reachable: true,
          state: desc.state,
          ...(desc.currentVersion === undefined ? {} : { currentVersion: desc.currentVersion }),
        };
      } catch (err) {
        return { ...base, reachable: false, error: errorCode(err) };
      }
    }),
  );
}

function ownTenant(core: KeyCore, tenant: string) {
  const t = Object.prototype.hasOwnProperty.call(core.ring.data.tenants, tenant) ? core.ring.data.tenants[tenant] : undefined;
  if (!t) throw new NotFoundError(`no tenant "${tenant}"`);
  return t;
}
