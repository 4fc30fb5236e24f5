import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, KeyDisabledError, NotFoundError } from '../errors.js';
import type { DekContext } from './context.js';
import { DekAccess } from './dek-access.js';
import type { DekCacheOptions, DekLease } from './dek-cache.js';
import { checkKekConfig, type KekConfig } from './kek-config.js';
import { rotateKek, type RotationProgress, type RotationReport } from './kek-rotation.js';
import { addKek, attachKek, detachKek, kekHealth } from './kek-set.js';
import { KeyAuditor, type KeyAuditEvent } from './key-audit.js';
import { cloneKeys, type KeyCore } from './key-core.js';
import { Keyring, newKeyringState } from './keyring.js';
import type { CollectionKeys, KekEntry, KeyringData, RotationPolicy, TenantEntry } from './keyring-file.js';
import { KEYRING_FILE, type KeyringOp, type LogHead } from './keyring-log.js';
import { createMacKey } from './keyring-mac-key.js';
import type { KekProvider } from './provider.js';
import { ProviderRegistry, type ProviderRegistryOptions } from './provider-registry.js';
import { checkPolicy, dueWork } from './rotation-policy.js';
import { retireOldKekVersions, shredDue, type ShredReport } from './shredding.js';
import * as tenants from './tenant-keys.js';
import { SerialQueue } from '../util/serial-queue.js';

export { KEYRING_FILE } from './keyring-log.js';
export { defaultLocalKeyDir } from './kek-config.js';
export type { KekConfig } from './kek-config.js';
export type { KeyAuditEvent } from './key-audit.js';
export type { ProviderFactory, KekBinding } from './provider-registry.js';
export type { RotationProgress, RotationReport } from './kek-rotation.js';
export type { ShredReport } from './shredding.js';

export interface KeyManagerOptions extends ProviderRegistryOptions {
  /** The store directory; the keyring is `<dir>/KEYRING`. */
  dir: string;
  /** Another keyring file to open (a backup's copy); opened read-only. */
  file?: string;
  cache?: DekCacheOptions;
  /** Receives one event per key use. */
  audit?: (event: KeyAuditEvent) => void;
  /** The identity the application acts as, recorded in audit events. */
  principal?: string;
  /** 'batch' (default): every keyring change is fsynced before it resolves. */
  durability?: 'batch' | 'none';
  /** The store id the keyring must belong to. */
  storeId?: string;
  /** Open the store's keyring for reading only (a reader beside a writer): nothing is ever written. */
  reader?: boolean;
}

export interface CreateKeyringOptions extends KeyManagerOptions {
  storeId: string;
  /** The store's KEKs by name, as the caller configures them (the keyring records only provider and key id). */
  keks: Record<string, KekConfig & { tenant?: string }>;
  defaultKeks?: string[];
  /** Further KEKs the caller configures (not yet in the keyring). */
  configured?: Record<string, KekConfig>;
}

/** One collection of a batch for {@link KeyManager.addCollections}. */
export interface NewCollectionKeys {
  id: string;
  name: string;
  tenant?: string;
}

const SYSTEM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Owns the keyring of one store: creates collection DEKs, unwraps and caches
 * them, rotates KEKs by rewrapping (data files are never touched), and
 * destroys DEKs. A facade over the parts in this directory: the keyring log
 * (keyring.ts, keyring-log.ts), DEK access (dek-access.ts), the caller's
 * providers (provider-registry.ts), KEK rotation, the KEK set, tenants,
 * shredding and rotation policy.
 */
export class KeyManager implements KeyCore {
  readonly deks: DekAccess;
  readonly audit: KeyAuditor;
  private readonly writeQueue = new SerialQueue();

  private constructor(
    readonly ring: Keyring,
    readonly registry: ProviderRegistry,
    audit: KeyAuditor,
    cache: DekCacheOptions | undefined,
  ) {
    this.audit = audit;
    this.deks = new DekAccess(
      () => this.ring.data,
      (k) => this.provider(k),
      audit,
      cache,
    );
  }

  /**
   * Writes a new keyring for a new store: every KEK must answer, and the
   * keyring MAC key is wrapped under each default KEK.
   */
  static async create(options: CreateKeyringOptions): Promise<KeyManager> {
    const names = Object.keys(options.keks);
    if (names.length === 0) throw new InvalidArgumentError('a keyring needs at least one KEK');
    const defaultKeks = options.defaultKeks ?? names;
    for (const n of defaultKeks)
      if (!Object.prototype.hasOwnProperty.call(options.keks, n)) throw new InvalidArgumentError(`default KEK "${n}" is not defined`);
    const configs: Record<string, KekConfig> = { ...(options.configured ?? {}) };
    for (const n of names) configs[n] = checkKekConfig(n, options.keks[n]);
    const registry = new ProviderRegistry({ ...options, keks: configs });
    const now = new Date().toISOString();
    const keks: Record<string, KekEntry> = {};
    for (const n of names) {
      const c = options.keks[n] as KekConfig & { tenant?: string };
      keks[n] = { provider: c.provider, keyId: c.keyId, createdAt: now, ...(c.tenant === undefined ? {} : { tenant: c.tenant }) };
    }
    const state = newKeyringState(options.storeId, [...defaultKeks], keks);
    const provider = (n: string) => registry.provider(n, keks[n] as KekEntry);
    try {
      for (const n of names) {
        const desc = await (await provider(n)).describe();
        if (desc.currentVersion !== undefined) (keks[n] as KekEntry).currentVersion = desc.currentVersion;
      }
      const mac = await createMacKey(options.storeId, defaultKeks, provider);
      state.macKey = mac.wraps;
      try {
        const ring = await Keyring.create(options.dir, state, mac.key, options.durability ?? 'batch');
        return new KeyManager(ring, registry, new KeyAuditor(options.audit, options.principal), options.cache);
      } finally {
        mac.key.fill(0);
      }
    } catch (err) {
      await registry.close();
      throw err;
    }
  }

  /** Opens and verifies an existing keyring: one provider call unwraps its MAC key. */
  static async open(options: KeyManagerOptions): Promise<KeyManager> {
    const registry = new ProviderRegistry(options);
    const audit = new KeyAuditor(options.audit, options.principal);
    try {
      const ring = await Keyring.open({
        dir: options.dir,
        registry,
        audit,
        ...(options.file === undefined ? {} : { file: options.file, readOnly: true }),
        ...(options.reader ? { reader: true } : {}),
        ...(options.durability === undefined ? {} : { durability: options.durability }),
        ...(options.storeId === undefined ? {} : { expectStoreId: options.storeId }),
      });
      return new KeyManager(ring, registry, audit, options.cache);
    } catch (err) {
      await registry.close();
      throw err;
    }
  }

  get storeId(): string {
    return this.ring.data.storeId;
  }

  /** A read-only view of the keyring (no key material in it). */
  get keyring(): Readonly<KeyringData> {
    return this.ring.data;
  }

  /** The keyring log's last record (sequence number and MAC), for a store state that pins the keyring. */
  get keyringHead(): LogHead | undefined {
    return this.ring.head;
  }

  /** The caller's explicit KEK configurations, including KEKs added in this process (what a config file records). */
  get kekConfigs(): Readonly<Record<string, KekConfig>> {
    return this.registry.configured;
  }

  /** A keyring file of `state` under this keyring's MAC key (a backup's copy of a filtered keyring). */
  encodeKeyring(state: KeyringData): Buffer {
    return this.ring.encode(state);
  }

  collectionKeys(collectionId: string): CollectionKeys {
    return this.deks.collectionKeys(collectionId);
  }

  /** Throws the typed error that explains why a collection's keys cannot be used now (cheap: called on every operation). */
  assertUsable(collectionId: string): void {
    this.deks.assertUsable(collectionId);
  }

  /** The DEK version new segments and WAL files of a collection use. */
  activeDekVersion(collectionId: string): number {
    return this.collectionKeys(collectionId).activeVersion;
  }

  /** Creates the first DEK of a new collection, wrapped under its tenant's KEKs or the store's. */
  async addCollection(collectionId: string, info: { name: string; tenant?: string }): Promise<CollectionKeys> {
    const [entry] = await this.addCollections([{ id: collectionId, ...info }]);
    return entry as CollectionKeys;
  }

  /** Creates the first DEKs of many collections, committed as one keyring record. */
  async addCollections(batch: readonly NewCollectionKeys[]): Promise<CollectionKeys[]> {
    return this.serialized(async () => {
      const data = this.ring.data;
      const seen = new Set<string>();
      for (const c of batch) {
        if (Object.prototype.hasOwnProperty.call(data.collections, c.id) || seen.has(c.id))
          throw new AlreadyExistsError(`collection ${c.id} already has keys`);
        seen.add(c.id);
        // A tenant nobody created is a label on the store's KEKs (as in 0.1.0); a created one keys its collections itself.
        const tenant = c.tenant === undefined ? undefined : knownTenant(data, c.tenant);
        if (tenant && tenant.state !== 'enabled')
          throw new KeyDisabledError(`tenant "${c.tenant}" is ${tenant.state}; no new collection can be keyed under it`);
      }
      const ops: KeyringOp[] = [];
      const made: { id: string; entry: CollectionKeys; plaintext: Uint8Array }[] = [];
      try {
        for (const c of batch) {
          const keks = (c.tenant === undefined ? undefined : knownTenant(data, c.tenant))?.keks ?? data.defaultKeks;
          const dek = await this.deks.newDek(c.id, 1, keks, c.tenant);
          const entry: CollectionKeys = {
            name: c.name,
            ...(c.tenant === undefined ? {} : { tenant: c.tenant }),
            keks: [...keks],
            activeVersion: 1,
            deks: [dek.record],
          };
          made.push({ id: c.id, entry, plaintext: dek.plaintext });
          ops.push({ k: 'c', id: c.id, v: entry });
        }
        await this.ring.commit(ops);
      } catch (err) {
        for (const m of made) m.plaintext.fill(0);
        throw err;
      }
      for (const m of made) this.deks.put(m.id, 1, m.plaintext);
      return made.map((m) => m.entry);
    });
  }

  /** A lease on a collection's DEK of a given version; release it when the operation ends. */
  leaseDek(collectionId: string, version: number): Promise<DekLease> {
    return this.deks.lease(collectionId, version);
  }

  /** Whether a DEK version is cached and unexpired (no provider call). */
  isDekCached(collectionId: string, version: number): boolean {
    return this.deks.isCached(collectionId, version);
  }

  /** Runs `fn` with a collection's DEK and releases it afterwards. */
  async withDek<T>(collectionId: string, version: number, fn: (dek: Uint8Array) => T | Promise<T>): Promise<T> {
    const lease = await this.leaseDek(collectionId, version);
    try {
      return await fn(lease.key);
    } finally {
      lease.release();
    }
  }

  /** Rotates a KEK (see kek-rotation.ts). */
  rotateKek(options: { kek?: string; onProgress?: (p: RotationProgress) => void; now?: Date } = {}): Promise<RotationReport> {
    return rotateKek(this, options);
  }

  // ----- the KEK set ------------------------------------------------------

  /** Registers a KEK under a name (checked by one provider call); `config` is how this process reaches it. */
  addKek(name: string, entry: { provider: string; keyId: string; tenant?: string; config?: Record<string, string> }): Promise<void> {
    return addKek(this, name, entry);
  }

  attachKek(kekName: string, options: { tenant?: string } = {}): Promise<number> {
    return attachKek(this, kekName, options);
  }

  detachKek(kekName: string, options: { tenant?: string } = {}): Promise<number> {
    return detachKek(this, kekName, options);
  }

  kekHealth(): ReturnType<typeof kekHealth> {
    return kekHealth(this);
  }

  // ----- tenants and lifecycle --------------------------------------------

  createTenant(tenant: string, options: { keks?: string[]; policy?: RotationPolicy } = {}): Promise<TenantEntry> {
    return tenants.createTenant(this, tenant, { ...options, ...(options.policy ? { policy: checkPolicy(options.policy) } : {}) });
  }

  tenant(tenant: string): TenantEntry {
    return tenants.tenantEntry(this, tenant);
  }

  tenantCollections(tenant: string): string[] {
    return tenants.tenantCollections(this, tenant);
  }

  disableTenant(tenant: string): Promise<void> {
    return tenants.disableTenant(this, tenant);
  }

  enableTenant(tenant: string): Promise<void> {
    return tenants.enableTenant(this, tenant);
  }

  scheduleTenantDeletion(tenant: string, options: { days?: number; now?: Date } = {}): Promise<Date> {
    return tenants.scheduleTenantDeletion(this, tenant, options);
  }

  cancelTenantDeletion(tenant: string): Promise<void> {
    return tenants.cancelTenantDeletion(this, tenant);
  }

  shredDue(options: { now?: Date } = {}): Promise<ShredReport> {
    return shredDue(this, options);
  }

  retireOldKekVersions(kekName: string): Promise<string[]> {
    return retireOldKekVersions(this, kekName);
  }

  /** Disables one collection at once (cached DEKs evicted and zeroed). */
  async disableCollection(collectionId: string): Promise<void> {
    await this.updateCollection(collectionId, 'disable', (c) => {
      c.disabled = true;
    });
  }

  async enableCollection(collectionId: string): Promise<void> {
    await this.updateCollection(collectionId, 'enable', (c) => {
      delete c.disabled;
    });
  }

  /**
   * Re-keys a collection: a new DEK version, wrapped under the collection's
   * KEKs, becomes the one new segments and WAL files use. Older versions stay
   * readable (state 'retired') until re-encryption rewrites their segments
   * and {@link destroyDekVersion} removes them.
   */
  async rekey(collectionId: string, options: { now?: Date } = {}): Promise<number> {
    return this.serialized(async () => {
      this.assertUsable(collectionId);
      const col = this.collectionKeys(collectionId);
      const version = Math.max(...col.deks.map((d) => d.version)) + 1;
      const made = await this.deks.newDek(collectionId, version, col.keks, col.tenant, options.now);
      const next = cloneKeys(col);
      const stamp = (options.now ?? new Date()).toISOString();
      for (const d of next.deks) {
        if (d.state === 'active') {
          d.state = 'retired';
          d.retiredAt = stamp;
        }
      }
      next.deks.push(made.record);
      next.activeVersion = version;
      next.pagesWritten = 0;
      try {
        await this.ring.commit([{ k: this.kindOf(collectionId), id: collectionId, v: next }]);
      } catch (err) {
        made.plaintext.fill(0);
        throw err;
      }
      this.deks.put(collectionId, version, made.plaintext);
      this.audit.emit({
        action: 'rekey',
        outcome: 'ok',
        collectionId,
        dekVersion: version,
        ...(col.tenant === undefined ? {} : { tenant: col.tenant }),
      });
      return version;
    });
  }

  /** Destroys a retired DEK version once nothing is sealed under it any more. */
  async destroyDekVersion(collectionId: string, version: number): Promise<void> {
    await this.updateCollection(
      collectionId,
      'retire-dek',
      (c) => {
        if (c.activeVersion === version) throw new InvalidArgumentError(`DEK version ${version} is the active one; re-key first`);
        const d = c.deks.find((x) => x.version === version);
        if (!d) throw new NotFoundError(`collection ${collectionId} has no DEK version ${version}`);
        d.state = 'destroyed';
        d.destroyedAt = new Date().toISOString();
        d.wraps = [];
      },
      version,
      true,
    );
  }

  /** Refuses DEK versions below `version` from now on, even where a wrap survives. */
  async setMinDecryptVersion(collectionId: string, version: number): Promise<void> {
    await this.updateCollection(collectionId, 'retire-dek', (c) => {
      if (!Number.isInteger(version) || version < 1 || version > c.activeVersion) {
        throw new InvalidArgumentError(`minimum decryption version expected an integer in 1..${c.activeVersion}, got ${version}`);
      }
      c.minDecryptVersion = version;
    });
  }

  /** Counts pages sealed under a collection's active DEK (for page-write rotation limits). */
  async notePagesWritten(collectionId: string, pages: number): Promise<void> {
    if (pages <= 0) return;
    await this.serialized(async () => {
      const c = Object.prototype.hasOwnProperty.call(this.ring.data.collections, collectionId)
        ? this.ring.data.collections[collectionId]
        : undefined;
      if (!c) return;
      await this.ring.commit([{ k: 'c', id: collectionId, v: { ...c, pagesWritten: (c.pagesWritten ?? 0) + pages } }]);
    });
  }

  /** Sets the rotation policy of the store or of one tenant. */
  async setPolicy(policy: RotationPolicy, options: { tenant?: string } = {}): Promise<void> {
    const checked = checkPolicy(policy);
    await this.serialized(async () => {
      if (options.tenant === undefined) await this.ring.commit([{ k: 'r', v: { ...this.ring.root(), policy: checked } }]);
      else await this.ring.commit([{ k: 't', id: options.tenant, v: { ...tenants.tenantEntry(this, options.tenant), policy: checked } }]);
    });
  }

  /** KEK rotations and re-keys that the rotation policies say are due at `now`. */
  dueWork(now: Date = new Date()): { kekRotations: string[]; rekeys: string[] } {
    return dueWork(this.ring.data, now);
  }

  // ----- system keys -------------------------------------------------------

  /**
   * A key the store itself uses (e.g. 'audit' for the audit trail's MAC),
   * made on first use and wrapped under the store's KEKs like a DEK, so that
   * it rotates and is protected with them.
   */
  async systemKey(name: string): Promise<DekLease> {
    if (typeof name !== 'string' || !SYSTEM_NAME.test(name) || name === 'keyring') {
      throw new InvalidArgumentError(
        'system key name expected 1-64 characters [A-Za-z0-9._-] starting with a letter or digit (not "keyring")',
      );
    }
    const id = `vectorseal-${name}`;
    if (!this.ring.data.system?.[id]) {
      await this.serialized(async () => {
        if (this.ring.data.system?.[id]) return;
        const keks = this.ring.data.defaultKeks;
        const made = await this.deks.newDek(id, 1, keks);
        await this.ring.commit([{ k: 's', id, v: { name, keks: [...keks], activeVersion: 1, deks: [made.record] } }]);
        this.deks.put(id, 1, made.plaintext);
      });
    }
    return this.leaseDek(id, 1);
  }

  /** Destroys every DEK of a collection (crypto-shredding its files) and forgets it. */
  async destroyCollection(collectionId: string): Promise<void> {
    await this.destroyCollections([collectionId]);
  }

  /** Destroys the DEKs of several collections in one keyring checkpoint. */
  async destroyCollections(collectionIds: readonly string[]): Promise<void> {
    await this.serialized(async () => {
      const ids = collectionIds.filter((id) => Object.prototype.hasOwnProperty.call(this.ring.data.collections, id));
      if (ids.length === 0) return;
      // A checkpoint: the log's earlier records hold the collections' wraps, and must not outlive them.
      await this.ring.commitAsCheckpoint(ids.map((id) => ({ k: 'c', id })));
      for (const id of ids) {
        this.deks.evict(id);
        this.audit.emit({ action: 'destroy', outcome: 'ok', collectionId: id });
      }
    });
  }

  /** Drops cached DEKs (all, or one collection's), zeroing them. */
  evict(collectionId?: string): void {
    this.deks.evict(collectionId);
  }

  /** The provider behind a KEK name, made from the caller's configuration of it. */
  provider(name: string): Promise<KekProvider> {
    const entry = Object.prototype.hasOwnProperty.call(this.ring.data.keks, name) ? this.ring.data.keks[name] : undefined;
    if (!entry) return Promise.reject(new NotFoundError(`no KEK named "${String(name).slice(0, 64)}" in the keyring`));
    return this.registry.provider(name, entry);
  }

  async close(): Promise<void> {
    this.deks.evict();
    await this.writeQueue.idle();
    await this.registry.close();
    await this.ring.close();
  }

  context(collectionId: string, dekVersion: number): DekContext {
    return this.deks.context(collectionId, dekVersion);
  }

  /** Keyring changes run one at a time so that no update is lost. */
  serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.writeQueue.run(fn);
  }

  private kindOf(collectionId: string): 'c' | 's' {
    return Object.prototype.hasOwnProperty.call(this.ring.data.collections, collectionId) ? 'c' : 's';
  }

  private async updateCollection(
    collectionId: string,
    action: KeyAuditEvent['action'],
    change: (c: CollectionKeys) => void,
    dekVersion?: number,
    checkpoint = false,
  ): Promise<void> {
    await this.serialized(async () => {
      const next = cloneKeys(this.collectionKeys(collectionId));
      change(next);
      const ops: KeyringOp[] = [{ k: this.kindOf(collectionId), id: collectionId, v: next }];
      if (checkpoint) await this.ring.commitAsCheckpoint(ops);
      else await this.ring.commit(ops);
      this.deks.evict(collectionId);
      this.audit.emit({
        action,
        outcome: 'ok',
        collectionId,
        ...(dekVersion === undefined ? {} : { dekVersion }),
        ...(next.tenant === undefined ? {} : { tenant: next.tenant }),
      });
    });
  }
}

/** The keyring file of a store directory. */
export function keyringFile(dir: string): string {
  return join(dir, KEYRING_FILE);
}

/** The tenant entry of that name, when one was created (own properties only). */
function knownTenant(data: KeyringData, tenant: string): TenantEntry | undefined {
  return Object.prototype.hasOwnProperty.call(data.tenants, tenant) ? data.tenants[tenant] : undefined;
}
