import { homedir } from 'node:os';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import {
  AlreadyExistsError,
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyPendingDeletionError,
  NotFoundError,
  VectorsealError,
} from '../errors.js';
import { crashPoint } from '../util/crash.js';
import type { DekContext } from './context.js';
import { DekCache, type DekCacheOptions, type DekLease } from './dek-cache.js';
import {
  KEYRING_FORMAT,
  KEYRING_VERSION,
  readKeyring,
  writeKeyring,
  type CollectionKeys,
  type DekRecord,
  type KekEntry,
  type KeyringData,
  type RotationPolicy,
  type StoredWrap,
  type TenantEntry,
} from './keyring-file.js';
import { LocalKekProvider, MASTER_KEY_ENV, parseMasterKeyEnv } from './local.js';
import type { KekProvider, WrappedDek } from './provider.js';

export const KEYRING_FILE = 'KEYRING';

/** Makes a provider instance for a KEK entry of the keyring. */
export type ProviderFactory = (entry: KekEntry, name: string) => KekProvider | Promise<KekProvider>;

/** One key use, for the audit trail. Never holds key material. */
export interface KeyAuditEvent {
  action:
    | 'generate'
    | 'unwrap'
    | 'rewrap'
    | 'wrap'
    | 'rotate-kek'
    | 'rekey'
    | 'retire-dek'
    | 'destroy'
    | 'disable'
    | 'enable'
    | 'schedule-deletion'
    | 'cancel-deletion'
    | 'shred'
    | 'add-kek'
    | 'remove-kek'
    | 'denied';
  outcome: 'ok' | 'error' | 'denied';
  principal?: string;
  collectionId?: string;
  tenant?: string;
  kek?: string;
  keyId?: string;
  kekVersion?: string;
  dekVersion?: number;
  /** The error's stable code when outcome is 'error'. */
  error?: string;
}

export interface KeyManagerOptions {
  /** The store directory; the keyring is `<dir>/KEYRING`. */
  dir: string;
  /** Provider factories by provider name; 'local' is built in. */
  providers?: Record<string, ProviderFactory>;
  /** Where local master keys live when the keyring does not say. */
  localKeyDir?: string;
  cache?: DekCacheOptions;
  /** Receives one event per key use. */
  audit?: (event: KeyAuditEvent) => void;
  /** The identity the application acts as, recorded in audit events. */
  principal?: string;
}

export interface CreateKeyringOptions extends KeyManagerOptions {
  storeId: string;
  /** KEKs by name; the store's default KEKs are `defaultKeks` (default: every one given). */
  keks: Record<string, Omit<KekEntry, 'createdAt'>>;
  defaultKeks?: string[];
}

export interface RotationProgress {
  done: number;
  total: number;
}

export interface RotationReport {
  kek: string;
  keyId: string;
  fromVersion: string | undefined;
  toVersion: string | undefined;
  /** Wraps rewrapped by this run. */
  rewrapped: number;
  /** Wraps that were already under the new version (a resumed rotation). */
  alreadyCurrent: number;
  /** Whether this run completed a rotation an earlier run started. */
  resumed: boolean;
  collections: number;
}

export interface ShredReport {
  /** Tenants shredded by this run. */
  tenants: string[];
  /** Their collections, whose DEKs are destroyed: the caller removes the files. */
  collections: string[];
  /** KEKs the tenants owned alone, with the provider's outcome ('destroyed', 'scheduled' or an error code). */
  keks: Record<string, string>;
  /** KEKs the tenants shared with others: rotated, and their old versions destroyed. */
  sharedKeks: string[];
  /** Per shared KEK, the versions destroyed (or an error code where the provider cannot). */
  retiredVersions: Record<string, string[] | string>;
}

/** Where local master keys go by default: outside any data directory. */
export function defaultLocalKeyDir(): string {
  const env = process.env['VECTORSEAL_KEY_DIR'];
  if (env) return env;
  const base = process.env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  return join(base, 'vectorseal', 'keys');
}

/**
 * Owns the keyring of one store: creates collection DEKs, unwraps and caches
 * them, rotates KEKs by rewrapping (data files are never touched), and
 * destroys DEKs.
 */
export class KeyManager {
  private data: KeyringData;
  private readonly file: string;
  private readonly cache: DekCache;
  private readonly providers = new Map<string, Promise<KekProvider>>();
  private readonly inflight = new Map<string, Promise<DekLease>>();
  private writeChain: Promise<unknown> = Promise.resolve();

  private constructor(
    data: KeyringData,
    private readonly options: KeyManagerOptions,
  ) {
    this.data = data;
    this.file = join(options.dir, KEYRING_FILE);
    this.cache = new DekCache(options.cache);
  }

  /** Writes a new keyring for a new store. */
  static async create(options: CreateKeyringOptions): Promise<KeyManager> {
    const now = new Date().toISOString();
    const names = Object.keys(options.keks);
    if (names.length === 0) throw new InvalidArgumentError('a keyring needs at least one KEK');
    const defaultKeks = options.defaultKeks ?? names;
    for (const n of defaultKeks) if (!options.keks[n]) throw new InvalidArgumentError(`default KEK "${n}" is not defined`);
    const data: KeyringData = {
      format: KEYRING_FORMAT,
      version: KEYRING_VERSION,
      storeId: options.storeId,
      generation: 0,
      updatedAt: now,
      defaultKeks,
      keks: Object.fromEntries(names.map((n) => [n, { ...options.keks[n], createdAt: now } as KekEntry])),
      tenants: {},
      collections: {},
    };
    const manager = new KeyManager(data, options);
    // Every KEK must answer before the store exists.
    for (const n of names) {
      const desc = await (await manager.provider(n)).describe();
      if (desc.currentVersion !== undefined) (data.keks[n] as KekEntry).currentVersion = desc.currentVersion;
    }
    manager.data = await writeKeyring(manager.file, data);
    return manager;
  }

  /** Opens an existing keyring. Costs no provider call. */
  static async open(options: KeyManagerOptions): Promise<KeyManager> {
    return new KeyManager(await readKeyring(join(options.dir, KEYRING_FILE)), options);
  }

  get storeId(): string {
    return this.data.storeId;
  }

  /** A read-only view of the keyring (no key material in it). */
  get keyring(): Readonly<KeyringData> {
    return this.data;
  }

  collectionKeys(collectionId: string): CollectionKeys {
    const c = this.data.collections[collectionId] ?? this.data.system?.[collectionId];
    if (!c) throw new NotFoundError(`no keys for collection ${collectionId}`);
    return c;
  }

  /**
   * Throws the typed error that explains why a collection's keys cannot be
   * used now (disabled, tenant disabled or pending deletion, shredded), and
   * nothing when they can. Cheap: the store calls it on every operation, so
   * a disable takes effect at once even for open collections.
   */
  assertUsable(collectionId: string): void {
    const col = this.collectionKeys(collectionId);
    if (col.disabled) throw new KeyDisabledError(`collection ${collectionId} is disabled`);
    if (col.tenant === undefined) return;
    const tenant = this.data.tenants[col.tenant];
    if (!tenant) return;
    switch (tenant.state) {
      case 'disabled':
        throw new KeyDisabledError(`tenant "${col.tenant}" is disabled`);
      case 'pending-deletion':
        throw new KeyPendingDeletionError(`tenant "${col.tenant}" is scheduled for deletion after ${tenant.deleteAfter}`);
      case 'deleted':
        throw new KeyDestroyedError(`tenant "${col.tenant}" was deleted and its keys destroyed`);
      default:
    }
  }

  /** The DEK version new segments and WAL files of a collection use. */
  activeDekVersion(collectionId: string): number {
    return this.collectionKeys(collectionId).activeVersion;
  }

  /** Creates the first DEK of a new collection, wrapped under its tenant's KEKs or the store's. */
  async addCollection(collectionId: string, info: { name: string; tenant?: string }): Promise<CollectionKeys> {
    return this.serialized(async () => {
      if (this.data.collections[collectionId]) throw new AlreadyExistsError(`collection ${collectionId} already has keys`);
      const tenant = info.tenant === undefined ? undefined : this.data.tenants[info.tenant];
      if (tenant && tenant.state !== 'enabled') {
        throw new KeyDisabledError(`tenant "${info.tenant}" is ${tenant.state}; no new collection can be keyed under it`);
      }
      const keks = tenant ? tenant.keks : this.data.defaultKeks;
      const record = await this.newDek(collectionId, 1, keks, info.tenant);
      const entry: CollectionKeys = {
        name: info.name,
        ...(info.tenant === undefined ? {} : { tenant: info.tenant }),
        keks: [...keks],
        activeVersion: 1,
        deks: [record.record],
      };
      const next = structuredClone(this.data);
      next.collections[collectionId] = entry;
      this.data = await writeKeyring(this.file, next);
      this.cache.put(this.cacheId(collectionId, 1), record.plaintext).release();
      return entry;
    });
  }

  /**
   * A lease on a collection's DEK of a given version. Served from the cache
   * when it can be; otherwise one provider call unwraps it, trying the
   * collection's KEKs in order. Release the lease when the operation ends.
   */
  async leaseDek(collectionId: string, version: number): Promise<DekLease> {
    this.assertUsable(collectionId);
    const id = this.cacheId(collectionId, version);
    const cached = this.cache.lease(id);
    if (cached) return cached;
    let pending = this.inflight.get(id);
    if (!pending) {
      pending = this.unwrapDek(collectionId, version).finally(() => this.inflight.delete(id));
      this.inflight.set(id, pending);
      const lease = await pending;
      return lease;
    }
    await pending.catch(() => undefined);
    return this.leaseDek(collectionId, version);
  }

  /**
   * Whether a collection's DEK version is in the cache and unexpired: a map
   * hit, no provider call. The store re-validates through {@link leaseDek}
   * when it is not, so a KEK disabled in its provider takes effect once the
   * cache TTL has passed.
   */
  isDekCached(collectionId: string, version: number): boolean {
    const lease = this.cache.lease(this.cacheId(collectionId, version));
    lease?.release();
    return lease !== undefined;
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

  /**
   * Rotates a KEK: creates a new KEK version, rewraps every DEK wrapped under
   * it (with a KMS, by ReEncrypt), verifies each new wrap, then swaps the
   * keyring atomically. Data files are not touched. An interrupted rotation
   * leaves the old keyring (still opening under the old version) with a
   * rotation marker; running this again completes it without creating yet
   * another version.
   */
  async rotateKek(options: { kek?: string; onProgress?: (p: RotationProgress) => void; now?: Date } = {}): Promise<RotationReport> {
    return this.serialized(async () => {
      const resumed = this.data.rotation !== undefined;
      const kekName = options.kek ?? this.data.rotation?.kek ?? this.data.defaultKeks[0];
      if (kekName === undefined || !this.data.keks[kekName]) throw new NotFoundError(`no KEK named "${String(kekName)}"`);
      if (resumed && this.data.rotation?.kek !== kekName) {
        throw new InvalidArgumentError(`a rotation of KEK "${this.data.rotation?.kek}" is under way; run it to completion first`);
      }
      const provider = await this.provider(kekName);
      const before = await provider.describe();
      let fromVersion = this.data.rotation?.fromVersion ?? before.currentVersion;
      if (!resumed) {
        // Only the marker changes: a shallow copy is enough to write it.
        const marked: KeyringData = {
          ...this.data,
          rotation: { kek: kekName, ...(fromVersion === undefined ? {} : { fromVersion }), startedAt: (options.now ?? new Date()).toISOString() },
        };
        this.data = await writeKeyring(this.file, marked);
      }
      crashPoint('rotate:marked');
      // A resumed rotation whose new version already exists does not create another.
      const target = resumed && before.currentVersion !== fromVersion ? before : await provider.rotate();
      fromVersion ??= before.currentVersion;
      crashPoint('rotate:kek-created');

      const next = structuredClone(this.data);
      const jobs: { cid: string; dek: DekRecord; index: number; wrap: StoredWrap }[] = [];
      let alreadyCurrent = 0;
      for (const [cid, col] of keySets(next)) {
        for (const dek of col.deks) {
          dek.wraps.forEach((wrap, index) => {
            if (wrap.kek !== kekName) return;
            // The blob is not needed to tell whether a wrap is current: skip decoding it.
            if (provider.isCurrent(toWrapped({ ...wrap, blob: '' }), target)) alreadyCurrent += 1;
            else jobs.push({ cid, dek, index, wrap });
          });
        }
      }
      let done = 0;
      options.onProgress?.({ done, total: jobs.length });
      const concurrency = provider.name === 'local' ? 1 : 8;
      await runPool(jobs, concurrency, async (job) => {
        const ctx = this.context(job.cid, job.dek.version);
        const fresh = await this.audited({ action: 'rewrap', collectionId: job.cid, kek: kekName, dekVersion: job.dek.version }, () =>
          provider.rewrapsInside ? this.rewrapInside(provider, job.wrap, ctx) : this.rewrapHere(provider, job.wrap, ctx),
        );
        job.dek.wraps[job.index] = fromWrapped(kekName, fresh);
        crashPoint('rotate:rewrap-one');
        done += 1;
        options.onProgress?.({ done, total: jobs.length });
      });
      crashPoint('rotate:rewrapped');
      delete next.rotation;
      const entry = next.keks[kekName] as KekEntry;
      if (target.currentVersion !== undefined) entry.currentVersion = target.currentVersion;
      // Maintenance runs with an injected clock: the policy must see the rotation at that time.
      entry.rotatedAt = (options.now ?? new Date()).toISOString();
      this.data = await writeKeyring(this.file, next);
      crashPoint('rotate:committed');
      this.emit({ action: 'rotate-kek', outcome: 'ok', kek: kekName, keyId: provider.keyId, ...(target.currentVersion === undefined ? {} : { kekVersion: target.currentVersion }) });
      return {
        kek: kekName,
        keyId: provider.keyId,
        fromVersion,
        toVersion: target.currentVersion,
        rewrapped: jobs.length,
        alreadyCurrent,
        resumed,
        collections: Object.keys(next.collections).length,
      };
    });
  }

  // ----- tenants and lifecycle -------------------------------------------

  /** Registers a KEK under a name (checked by one provider call). */
  async addKek(name: string, entry: Omit<KekEntry, 'createdAt'>): Promise<void> {
    await this.serialized(async () => {
      if (this.data.keks[name]) throw new AlreadyExistsError(`a KEK named "${name}" exists`);
      const next = structuredClone(this.data);
      next.keks[name] = { ...entry, createdAt: new Date().toISOString() };
      const provider = await this.makeProvider(next.keks[name] as KekEntry, name);
      const desc = await provider.describe();
      if (desc.state !== 'enabled') throw new KeyDisabledError(`KEK "${name}" is ${desc.state}`);
      if (desc.currentVersion !== undefined) (next.keks[name] as KekEntry).currentVersion = desc.currentVersion;
      this.providers.set(name, Promise.resolve(provider));
      this.data = await writeKeyring(this.file, next);
      this.emit({ action: 'add-kek', outcome: 'ok', kek: name, keyId: entry.keyId });
    });
  }

  /**
   * Creates a tenant whose collections' DEKs are wrapped under its own KEKs
   * (named KEK entries; default: the store's). Collections of different
   * tenants share no key.
   */
  async createTenant(tenant: string, options: { keks?: string[]; policy?: RotationPolicy } = {}): Promise<TenantEntry> {
    checkName('tenant', tenant);
    return this.serialized(async () => {
      if (this.data.tenants[tenant]) throw new AlreadyExistsError(`tenant "${tenant}" exists`);
      const keks = options.keks ?? this.data.defaultKeks;
      for (const k of keks) if (!this.data.keks[k]) throw new NotFoundError(`no KEK named "${k}"`);
      if (keks.length === 0) throw new InvalidArgumentError('a tenant needs at least one KEK');
      const next = structuredClone(this.data);
      const entry: TenantEntry = { keks: [...keks], state: 'enabled', createdAt: new Date().toISOString(), ...(options.policy ? { policy: options.policy } : {}) };
      next.tenants[tenant] = entry;
      this.data = await writeKeyring(this.file, next);
      return entry;
    });
  }

  tenant(tenant: string): TenantEntry {
    const t = this.data.tenants[tenant];
    if (!t) throw new NotFoundError(`no tenant "${tenant}"`);
    return t;
  }

  /** Collection ids keyed under a tenant. */
  tenantCollections(tenant: string): string[] {
    return Object.entries(this.data.collections)
      .filter(([, c]) => c.tenant === tenant)
      .map(([id]) => id);
  }

  /** Disables a tenant at once: its cached DEKs are evicted and zeroed, every use fails until enabled. */
  async disableTenant(tenant: string): Promise<void> {
    await this.updateTenant(tenant, 'disable', (t) => {
      if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
      if (t.state === 'pending-deletion') t.stateBeforeDeletion = 'disabled';
      else t.state = 'disabled';
    });
  }

  async enableTenant(tenant: string): Promise<void> {
    await this.updateTenant(tenant, 'enable', (t) => {
      if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
      if (t.state === 'pending-deletion') throw new KeyPendingDeletionError(`tenant "${tenant}" is scheduled for deletion; cancel it first`);
      t.state = 'enabled';
    });
  }

  /** Schedules a tenant's crypto-shredding `days` (7-30, default 30) from `now`; its keys are unusable meanwhile. */
  async scheduleTenantDeletion(tenant: string, options: { days?: number; now?: Date } = {}): Promise<Date> {
    const days = options.days ?? 30;
    if (!Number.isInteger(days) || days < 7 || days > 30) {
      throw new InvalidArgumentError(`deletion window expected an integer number of days in 7..30, got ${days}`);
    }
    const when = new Date((options.now ?? new Date()).getTime() + days * 86_400_000);
    await this.updateTenant(tenant, 'schedule-deletion', (t) => {
      if (t.state === 'deleted') throw new KeyDestroyedError(`tenant "${tenant}" was deleted`);
      if (t.state !== 'pending-deletion') t.stateBeforeDeletion = t.state;
      t.state = 'pending-deletion';
      t.deleteAfter = when.toISOString();
    });
    return when;
  }

  /** Cancels a scheduled deletion; the tenant returns to the state it had. */
  async cancelTenantDeletion(tenant: string): Promise<void> {
    await this.updateTenant(tenant, 'cancel-deletion', (t) => {
      if (t.state !== 'pending-deletion') throw new InvalidArgumentError(`tenant "${tenant}" is not scheduled for deletion`);
      t.state = t.stateBeforeDeletion ?? 'enabled';
      delete t.stateBeforeDeletion;
      delete t.deleteAfter;
    });
  }

  /**
   * Crypto-shreds every tenant whose deletion window has passed: their DEKs
   * are destroyed in the keyring (wraps removed), and KEKs the tenant owns
   * alone are deleted in their provider (a KMS schedules it, 7 days). Returns
   * the shredded collections, whose files the caller removes.
   */
  async shredDue(options: { now?: Date } = {}): Promise<ShredReport> {
    const report = await this.shredKeyring((options.now ?? new Date()).getTime());
    // A KEK the shredded tenant shared with others still opens copies of the
    // old keyring: rotate it and destroy the versions the old wraps used.
    for (const kek of report.sharedKeks) {
      try {
        await this.rotateKek({ kek });
        report.retiredVersions[kek] = await this.retireOldKekVersions(kek);
      } catch (err) {
        report.retiredVersions[kek] = `error: ${err instanceof VectorsealError ? err.code : 'VS_ERROR'}`;
      }
    }
    return report;
  }

  /**
   * Destroys the versions of a KEK older than its current one. Every wrap
   * must already be under the current version (run rotateKek first).
   */
  async retireOldKekVersions(kekName: string): Promise<string[]> {
    const entry = this.data.keks[kekName];
    if (!entry?.currentVersion) throw new NotFoundError(`KEK "${kekName}" has no known current version`);
    for (const [, col] of keySets(this.data)) {
      for (const d of col.deks) {
        if (d.wraps.some((w) => w.kek === kekName && w.kekVersion !== entry.currentVersion)) {
          throw new InvalidArgumentError(`KEK "${kekName}" still wraps DEKs under an old version; rotate it first`);
        }
      }
    }
    return (await this.provider(kekName)).destroyOldVersions(entry.currentVersion);
  }

  private async shredKeyring(now: number): Promise<ShredReport> {
    return this.serialized(async () => {
      const due = Object.entries(this.data.tenants).filter(
        ([, t]) => t.state === 'pending-deletion' && t.deleteAfter !== undefined && Date.parse(t.deleteAfter) <= now,
      );
      if (due.length === 0) return { tenants: [], collections: [], keks: {}, sharedKeks: [], retiredVersions: {} };
      const next = structuredClone(this.data);
      const collections: string[] = [];
      const stamp = new Date(now).toISOString();
      for (const [name] of due) {
        for (const [cid, col] of Object.entries(next.collections)) {
          if (col.tenant !== name) continue;
          for (const d of col.deks) {
            d.state = 'destroyed';
            d.destroyedAt = stamp;
            d.wraps = [];
          }
          collections.push(cid);
          this.cache.evict(cid);
        }
        const t = next.tenants[name] as TenantEntry;
        t.state = 'deleted';
        t.deletedAt = stamp;
        delete t.deleteAfter;
        delete t.stateBeforeDeletion;
      }
      // DEK wraps go first: once this keyring is written, no copy of it opens the tenant's data
      // unless an older keyring and the KEK both survive (see README, crypto-shredding).
      this.data = await writeKeyring(this.file, next);
      crashPoint('shred:keyring-written');
      const keks: Record<string, string> = {};
      const sharedKeks = new Set<string>();
      for (const [name, tenant] of due) {
        for (const kekName of tenant.keks) {
          const entry = this.data.keks[kekName];
          if (!entry || entry.state === 'destroyed') continue;
          const sharedElsewhere =
            this.data.defaultKeks.includes(kekName) ||
            Object.entries(this.data.tenants).some(([other, t]) => other !== name && t.state !== 'deleted' && t.keks.includes(kekName));
          if (sharedElsewhere) {
            sharedKeks.add(kekName);
            continue;
          }
          try {
            const provider = await this.provider(kekName);
            keks[kekName] = await provider.destroyKek({ pendingWindowInDays: 7 });
          } catch (err) {
            keks[kekName] = `error: ${err instanceof VectorsealError ? err.code : 'VS_ERROR'}`;
          }
        }
        this.emit({ action: 'shred', outcome: 'ok', tenant: name });
      }
      const after = structuredClone(this.data);
      for (const [kekName, outcome] of Object.entries(keks)) {
        const entry = after.keks[kekName] as KekEntry;
        if (outcome === 'destroyed') entry.state = 'destroyed';
        else if (outcome === 'scheduled') entry.state = 'pending-deletion';
      }
      if (Object.keys(keks).length > 0) this.data = await writeKeyring(this.file, after);
      return { tenants: due.map(([n]) => n), collections, keks, sharedKeks: [...sharedKeks], retiredVersions: {} };
    });
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
      const made = await this.newDek(collectionId, version, col.keks, col.tenant, options.now);
      const next = structuredClone(this.data);
      const target = (next.collections[collectionId] ?? next.system?.[collectionId]) as CollectionKeys;
      const stamp = (options.now ?? new Date()).toISOString();
      for (const d of target.deks) {
        if (d.state === 'active') {
          d.state = 'retired';
          d.retiredAt = stamp;
        }
      }
      target.deks.push(made.record);
      target.activeVersion = version;
      target.pagesWritten = 0;
      this.data = await writeKeyring(this.file, next);
      this.cache.put(this.cacheId(collectionId, version), made.plaintext).release();
      this.emit({ action: 'rekey', outcome: 'ok', collectionId, dekVersion: version, ...(col.tenant === undefined ? {} : { tenant: col.tenant }) });
      return version;
    });
  }

  /** Destroys a retired DEK version once nothing is sealed under it any more. */
  async destroyDekVersion(collectionId: string, version: number): Promise<void> {
    await this.updateCollection(collectionId, 'retire-dek', (c) => {
      if (c.activeVersion === version) throw new InvalidArgumentError(`DEK version ${version} is the active one; re-key first`);
      const d = c.deks.find((x) => x.version === version);
      if (!d) throw new NotFoundError(`collection ${collectionId} has no DEK version ${version}`);
      d.state = 'destroyed';
      d.destroyedAt = new Date().toISOString();
      d.wraps = [];
    }, version);
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
      const next = structuredClone(this.data);
      const c = next.collections[collectionId];
      if (!c) return;
      c.pagesWritten = (c.pagesWritten ?? 0) + pages;
      this.data = await writeKeyring(this.file, next);
    });
  }

  /** Sets the rotation policy of the store or of one tenant. */
  async setPolicy(policy: RotationPolicy, options: { tenant?: string } = {}): Promise<void> {
    for (const [k, v] of Object.entries(policy)) {
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1)) throw new InvalidArgumentError(`policy "${k}" expected a positive integer, got ${String(v)}`);
    }
    await this.serialized(async () => {
      const next = structuredClone(this.data);
      if (options.tenant === undefined) next.policy = { ...policy };
      else {
        const t = next.tenants[options.tenant];
        if (!t) throw new NotFoundError(`no tenant "${options.tenant}"`);
        t.policy = { ...policy };
      }
      this.data = await writeKeyring(this.file, next);
    });
  }

  /** KEK rotations and re-keys that the rotation policies say are due at `now`. */
  dueWork(now: Date = new Date()): { kekRotations: string[]; rekeys: string[] } {
    const t = now.getTime();
    const policyFor = (tenant?: string): RotationPolicy => (tenant === undefined ? undefined : this.data.tenants[tenant]?.policy) ?? this.data.policy ?? {};
    const kekRotations = new Set<string>();
    for (const [name, entry] of Object.entries(this.data.keks)) {
      if (entry.state === 'destroyed' || entry.state === 'pending-deletion') continue;
      const days = policyFor(entry.tenant).kekRotationDays;
      if (days === undefined) continue;
      const since = Date.parse(entry.rotatedAt ?? entry.createdAt);
      if (t - since >= days * 86_400_000) kekRotations.add(name);
    }
    const rekeys: string[] = [];
    for (const [cid, col] of Object.entries(this.data.collections)) {
      const tenant = col.tenant === undefined ? undefined : this.data.tenants[col.tenant];
      if (col.disabled || (tenant && tenant.state !== 'enabled')) continue;
      const p = policyFor(col.tenant);
      const active = col.deks.find((d) => d.version === col.activeVersion);
      if (!active) continue;
      const aged = p.dekRotationDays !== undefined && t - Date.parse(active.createdAt) >= p.dekRotationDays * 86_400_000;
      const worn = p.dekMaxPages !== undefined && (col.pagesWritten ?? 0) >= p.dekMaxPages;
      if (aged || worn) rekeys.push(cid);
    }
    return { kekRotations: [...kekRotations], rekeys };
  }

  // ----- several KEKs per DEK ---------------------------------------------

  /**
   * Adds a KEK to the store's defaults (or a tenant's) and wraps every
   * affected DEK under it too, so any one of the KEKs can open the data. Data
   * files are not touched.
   */
  async attachKek(kekName: string, options: { tenant?: string } = {}): Promise<number> {
    return this.serialized(async () => {
      if (!this.data.keks[kekName]) throw new NotFoundError(`no KEK named "${kekName}"`);
      const next = structuredClone(this.data);
      const list = options.tenant === undefined ? next.defaultKeks : (next.tenants[options.tenant]?.keks ?? missingTenant(options.tenant));
      if (!list.includes(kekName)) list.push(kekName);
      const provider = await this.provider(kekName);
      let wrapped = 0;
      for (const [cid, col] of keySets(next)) {
        if (col.tenant !== options.tenant) continue;
        if (!col.keks.includes(kekName)) col.keks.push(kekName);
        for (const d of col.deks) {
          if (d.state === 'destroyed' || d.wraps.some((w) => w.kek === kekName)) continue;
          const dek = await this.withDek(cid, d.version, (k) => Buffer.from(k));
          try {
            const w = await this.audited({ action: 'wrap', collectionId: cid, kek: kekName, dekVersion: d.version }, () => provider.wrap(dek, this.context(cid, d.version)));
            d.wraps.push(fromWrapped(kekName, w));
            wrapped += 1;
          } finally {
            dek.fill(0);
          }
        }
      }
      this.data = await writeKeyring(this.file, next);
      this.emit({ action: 'add-kek', outcome: 'ok', kek: kekName, ...(options.tenant === undefined ? {} : { tenant: options.tenant }) });
      return wrapped;
    });
  }

  /** Removes a KEK from the defaults (or a tenant's) and drops its wraps; every DEK must keep another. */
  async detachKek(kekName: string, options: { tenant?: string } = {}): Promise<number> {
    return this.serialized(async () => {
      const next = structuredClone(this.data);
      const owner = options.tenant === undefined ? next : (next.tenants[options.tenant] ?? missingTenant(options.tenant));
      const list = 'defaultKeks' in owner ? owner.defaultKeks : owner.keks;
      if (!list.includes(kekName)) throw new NotFoundError(`KEK "${kekName}" is not attached here`);
      if (list.length === 1) throw new InvalidArgumentError(`KEK "${kekName}" is the only one; attach another first`);
      list.splice(list.indexOf(kekName), 1);
      let dropped = 0;
      for (const [, col] of keySets(next)) {
        if (col.tenant !== options.tenant) continue;
        col.keks = col.keks.filter((k) => k !== kekName);
        for (const d of col.deks) {
          const kept = d.wraps.filter((w) => w.kek !== kekName);
          if (d.state !== 'destroyed' && kept.length === 0) {
            throw new InvalidArgumentError(`DEK version ${d.version} is wrapped only under "${kekName}"`);
          }
          dropped += d.wraps.length - kept.length;
          d.wraps = kept;
        }
      }
      this.data = await writeKeyring(this.file, next);
      this.emit({ action: 'remove-kek', outcome: 'ok', kek: kekName });
      return dropped;
    });
  }

  /** Asks every KEK's provider for its state; an unreachable one is reported, not thrown. */
  async kekHealth(): Promise<{ name: string; provider: string; keyId: string; reachable: boolean; state?: string; currentVersion?: string; error?: string }[]> {
    return Promise.all(
      Object.entries(this.data.keks).map(async ([name, entry]) => {
        const base = { name, provider: entry.provider, keyId: entry.keyId };
        if (entry.state === 'destroyed') return { ...base, reachable: false, state: 'destroyed' };
        try {
          const desc = await (await this.provider(name)).describe();
          return { ...base, reachable: true, state: desc.state, ...(desc.currentVersion === undefined ? {} : { currentVersion: desc.currentVersion }) };
        } catch (err) {
          return { ...base, reachable: false, error: err instanceof VectorsealError ? err.code : 'VS_ERROR' };
        }
      }),
    );
  }

  // ----- system keys -------------------------------------------------------

  /**
   * A key the store itself uses (e.g. 'audit' for the audit trail's MAC),
   * made on first use and wrapped under the store's KEKs like a DEK, so that
   * it rotates and is protected with them.
   */
  async systemKey(name: string): Promise<DekLease> {
    checkName('system key', name);
    const id = `vectorseal-${name}`;
    if (!this.data.system?.[id]) {
      await this.serialized(async () => {
        if (this.data.system?.[id]) return;
        const made = await this.newDek(id, 1, this.data.defaultKeks);
        const next = structuredClone(this.data);
        next.system ??= {};
        next.system[id] = { name, keks: [...this.data.defaultKeks], activeVersion: 1, deks: [made.record] };
        this.data = await writeKeyring(this.file, next);
        this.cache.put(this.cacheId(id, 1), made.plaintext).release();
      });
    }
    return this.leaseDek(id, 1);
  }

  private async updateTenant(tenant: string, action: KeyAuditEvent['action'], change: (t: TenantEntry) => void): Promise<void> {
    await this.serialized(async () => {
      const next = structuredClone(this.data);
      const t = next.tenants[tenant];
      if (!t) throw new NotFoundError(`no tenant "${tenant}"`);
      change(t);
      this.data = await writeKeyring(this.file, next);
      for (const cid of this.tenantCollections(tenant)) this.cache.evict(cid);
      this.emit({ action, outcome: 'ok', tenant });
    });
  }

  private async updateCollection(collectionId: string, action: KeyAuditEvent['action'], change: (c: CollectionKeys) => void, dekVersion?: number): Promise<void> {
    await this.serialized(async () => {
      const next = structuredClone(this.data);
      const c = next.collections[collectionId] ?? next.system?.[collectionId];
      if (!c) throw new NotFoundError(`no keys for collection ${collectionId}`);
      change(c);
      this.data = await writeKeyring(this.file, next);
      this.cache.evict(collectionId);
      this.emit({ action, outcome: 'ok', collectionId, ...(dekVersion === undefined ? {} : { dekVersion }), ...(c.tenant === undefined ? {} : { tenant: c.tenant }) });
    });
  }

  /** Destroys every DEK of a collection (crypto-shredding its files) and forgets it. */
  async destroyCollection(collectionId: string): Promise<void> {
    await this.serialized(async () => {
      if (!this.data.collections[collectionId]) return;
      const next = structuredClone(this.data);
      delete next.collections[collectionId];
      this.data = await writeKeyring(this.file, next);
      this.cache.evict(collectionId);
      this.emit({ action: 'destroy', outcome: 'ok', collectionId });
    });
  }

  /** Drops cached DEKs (all, or one collection's), zeroing them. */
  evict(collectionId?: string): void {
    this.cache.evict(collectionId);
  }

  /** The provider behind a KEK name. */
  async provider(name: string): Promise<KekProvider> {
    let p = this.providers.get(name);
    if (!p) {
      const entry = this.data.keks[name];
      if (!entry) throw new NotFoundError(`no KEK named "${name}" in the keyring`);
      p = Promise.resolve(this.makeProvider(entry, name));
      p.catch(() => this.providers.delete(name));
      this.providers.set(name, p);
    }
    return p;
  }

  async close(): Promise<void> {
    this.cache.evict();
    await this.writeChain.catch(() => undefined);
    for (const p of this.providers.values()) await (await p.catch(() => undefined))?.close();
    this.providers.clear();
  }

  context(collectionId: string, dekVersion: number): DekContext {
    return { storeId: this.data.storeId, collectionId, dekVersion };
  }

  private async makeProvider(entry: KekEntry, name: string): Promise<KekProvider> {
    const factory = this.options.providers?.[entry.provider];
    if (factory) return factory(entry, name);
    if (entry.provider === 'local') {
      const env = process.env[MASTER_KEY_ENV];
      if (env && !entry.config?.['keyDir'] && !this.options.localKeyDir) {
        return new LocalKekProvider({ keyId: entry.keyId, masterKeys: parseMasterKeyEnv(env) });
      }
      const keyDir = this.options.localKeyDir ?? entry.config?.['keyDir'] ?? defaultLocalKeyDir();
      return new LocalKekProvider({ keyId: entry.keyId, keyDir });
    }
    if (entry.provider === 'aws-kms') {
      // Region, endpoint and credentials: the keyring's non-secret settings, else the SDK's usual chain.
      const { AwsKmsKekProvider } = await import('./aws-kms.js');
      const region = entry.config?.['region'];
      const endpoint = entry.config?.['endpoint'];
      return new AwsKmsKekProvider({ keyId: entry.keyId, ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}) });
    }
    if (entry.provider === 'pkcs11') {
      // Module, token and PIN source come from the keyring; the PIN itself from its env var or file.
      const { Pkcs11KekProvider, pkcs11OptionsFromEntry } = await import('./pkcs11.js');
      return Pkcs11KekProvider.open(pkcs11OptionsFromEntry(entry));
    }
    throw new InvalidArgumentError(`no provider "${entry.provider}" is configured for KEK "${name}"`);
  }

  private async newDek(collectionId: string, version: number, keks: string[], tenant?: string, now?: Date): Promise<{ record: DekRecord; plaintext: Uint8Array }> {
    const ctx = this.context(collectionId, version);
    const [first, ...rest] = keks;
    if (first === undefined) throw new InvalidArgumentError('a collection needs at least one KEK');
    const primary = await this.provider(first);
    const generated = await this.audited({ action: 'generate', collectionId, kek: first, dekVersion: version, ...(tenant === undefined ? {} : { tenant }) }, () =>
      primary.generateDataKey(ctx),
    );
    const wraps = [fromWrapped(first, generated.wrapped)];
    for (const name of rest) {
      const p = await this.provider(name);
      const w = await this.audited({ action: 'wrap', collectionId, kek: name, dekVersion: version }, () => p.wrap(generated.plaintext, ctx));
      wraps.push(fromWrapped(name, w));
    }
    return {
      record: { version, state: 'active', createdAt: (now ?? new Date()).toISOString(), wraps },
      plaintext: generated.plaintext,
    };
  }

  private async unwrapDek(collectionId: string, version: number): Promise<DekLease> {
    const col = this.collectionKeys(collectionId);
    const dek = col.deks.find((d) => d.version === version);
    if (!dek) throw new NotFoundError(`collection ${collectionId} has no DEK version ${version}`);
    if (dek.state === 'destroyed' || dek.wraps.length === 0) {
      throw new KeyDestroyedError(`DEK version ${version} of collection ${collectionId} was destroyed`);
    }
    if (col.minDecryptVersion !== undefined && version < col.minDecryptVersion) {
      throw new KeyDisabledError(`DEK version ${version} of collection ${collectionId} is below the minimum decryption version ${col.minDecryptVersion}`);
    }
    const ctx = this.context(collectionId, version);
    const order = [...col.keks, ...dek.wraps.map((w) => w.kek)].filter((n, i, all) => all.indexOf(n) === i);
    let firstError: unknown;
    for (const name of order) {
      const wrap = dek.wraps.find((w) => w.kek === name);
      if (!wrap) continue;
      try {
        // Reaching the provider is inside the audited call: a KEK that cannot even be reached is on record
        // (outcome 'error' with its code) before the next KEK is tried.
        const plaintext = await this.audited(
          { action: 'unwrap', collectionId, kek: name, dekVersion: version, ...(col.tenant === undefined ? {} : { tenant: col.tenant }) },
          async () => (await this.provider(name)).unwrap(toWrapped(wrap), ctx),
        );
        return this.cache.put(this.cacheId(collectionId, version), plaintext);
      } catch (err) {
        firstError ??= err;
      }
    }
    throw firstError ?? new KeyDestroyedError(`DEK version ${version} of collection ${collectionId} has no usable wrap`);
  }

  /**
   * Rewraps inside the provider (KMS ReEncrypt: the DEK never comes here),
   * then proves the new wrap opens: when the DEK is cached, the unwrapped bytes
   * must match it.
   */
  private async rewrapInside(provider: KekProvider, old: StoredWrap, ctx: DekContext): Promise<WrappedDek> {
    const fresh = await provider.rewrap(toWrapped(old), ctx);
    const check = await provider.unwrap(fresh, ctx);
    try {
      const cached = this.cache.lease(this.cacheId(ctx.collectionId, ctx.dekVersion));
      try {
        if (cached && !timingSafeEqual(cached.key, check)) throw rewrapMismatch(ctx);
      } finally {
        cached?.release();
      }
    } finally {
      check.fill(0);
    }
    return fresh;
  }

  /** Rewraps in process (local, PKCS#11): unwrap, wrap under the current version, and check the new wrap opens to the same DEK. */
  private async rewrapHere(provider: KekProvider, old: StoredWrap, ctx: DekContext): Promise<WrappedDek> {
    const dek = await provider.unwrap(toWrapped(old), ctx);
    try {
      const fresh = await provider.wrap(dek, ctx);
      const check = await provider.unwrap(fresh, ctx);
      try {
        if (!timingSafeEqual(dek, check)) throw rewrapMismatch(ctx);
      } finally {
        check.fill(0);
      }
      return fresh;
    } finally {
      dek.fill(0);
    }
  }

  private async audited<T>(event: Omit<KeyAuditEvent, 'outcome'>, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.emit({ ...event, outcome: 'ok' });
      return result;
    } catch (err) {
      this.emit({ ...event, outcome: 'error', error: err instanceof VectorsealError ? err.code : 'VS_ERROR' });
      throw err;
    }
  }

  private emit(event: KeyAuditEvent): void {
    if (!this.options.audit) return;
    this.options.audit(this.options.principal === undefined ? event : { principal: this.options.principal, ...event });
  }

  private cacheId(collectionId: string, version: number): string {
    return `${collectionId}/${version}`;
  }

  /** Keyring changes run one at a time so that no update is lost. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeChain.then(fn, fn);
    this.writeChain = run.catch(() => undefined);
    return run;
  }
}

function rewrapMismatch(ctx: DekContext): CorruptDataError {
  return new CorruptDataError(`rewrapped DEK version ${ctx.dekVersion} of collection ${ctx.collectionId} does not match the original`, { reason: 'rewrap' });
}

/** Every key set of the keyring: collections, then the store's own keys. */
function keySets(data: KeyringData): [string, CollectionKeys][] {
  return [...Object.entries(data.collections), ...Object.entries(data.system ?? {})];
}

function missingTenant(tenant: string): never {
  throw new NotFoundError(`no tenant "${tenant}"`);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkName(what: string, value: string): void {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new InvalidArgumentError(`${what} name expected 1-64 characters [A-Za-z0-9._-] starting with a letter or digit`);
  }
}

function toWrapped(w: StoredWrap): WrappedDek {
  return {
    provider: w.provider,
    keyId: w.keyId,
    ...(w.kekVersion === undefined ? {} : { kekVersion: w.kekVersion }),
    blob: Buffer.from(w.blob, 'base64'),
  };
}

function fromWrapped(kek: string, w: WrappedDek): StoredWrap {
  return {
    kek,
    provider: w.provider,
    keyId: w.keyId,
    ...(w.kekVersion === undefined ? {} : { kekVersion: w.kekVersion }),
    blob: Buffer.from(w.blob).toString('base64'),
  };
}

async function runPool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
