import { homedir } from 'node:os';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import {
  AlreadyExistsError,
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
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
  type StoredWrap,
} from './keyring-file.js';
import { LocalKekProvider, MASTER_KEY_ENV, parseMasterKeyEnv } from './local.js';
import type { KekProvider, WrappedDek } from './provider.js';

export const KEYRING_FILE = 'KEYRING';

/** Makes a provider instance for a KEK entry of the keyring. */
export type ProviderFactory = (entry: KekEntry, name: string) => KekProvider | Promise<KekProvider>;

/** One key use, for the audit trail. Never holds key material. */
export interface KeyAuditEvent {
  action: 'generate' | 'unwrap' | 'rewrap' | 'rotate-kek' | 'destroy' | 'wrap';
  outcome: 'ok' | 'error';
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
    const c = this.data.collections[collectionId];
    if (!c) throw new NotFoundError(`no keys for collection ${collectionId}`);
    return c;
  }

  /** The DEK version new segments and WAL files of a collection use. */
  activeDekVersion(collectionId: string): number {
    return this.collectionKeys(collectionId).activeVersion;
  }

  /** Creates the first DEK of a new collection, wrapped under its tenant's KEKs or the store's. */
  async addCollection(collectionId: string, info: { name: string; tenant?: string }): Promise<CollectionKeys> {
    return this.serialized(async () => {
      if (this.data.collections[collectionId]) throw new AlreadyExistsError(`collection ${collectionId} already has keys`);
      const keks = info.tenant !== undefined && this.data.tenants[info.tenant] ? this.data.tenants[info.tenant]!.keks : this.data.defaultKeks;
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
  async rotateKek(options: { kek?: string; onProgress?: (p: RotationProgress) => void } = {}): Promise<RotationReport> {
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
        const marked = structuredClone(this.data);
        marked.rotation = { kek: kekName, ...(fromVersion === undefined ? {} : { fromVersion }), startedAt: new Date().toISOString() };
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
      for (const [cid, col] of Object.entries(next.collections)) {
        for (const dek of col.deks) {
          dek.wraps.forEach((wrap, index) => {
            if (wrap.kek !== kekName) return;
            if (provider.isCurrent(toWrapped(wrap), target)) alreadyCurrent += 1;
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
          provider.rewrap(toWrapped(job.wrap), ctx),
        );
        await this.verifyRewrap(provider, job.wrap, fresh, ctx);
        job.dek.wraps[job.index] = fromWrapped(kekName, fresh);
        crashPoint('rotate:rewrap-one');
        done += 1;
        options.onProgress?.({ done, total: jobs.length });
      });
      crashPoint('rotate:rewrapped');
      delete next.rotation;
      const entry = next.keks[kekName] as KekEntry;
      if (target.currentVersion !== undefined) entry.currentVersion = target.currentVersion;
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
    throw new InvalidArgumentError(`no provider "${entry.provider}" is configured for KEK "${name}"`);
  }

  private async newDek(collectionId: string, version: number, keks: string[], tenant?: string): Promise<{ record: DekRecord; plaintext: Uint8Array }> {
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
      record: { version, state: 'active', createdAt: new Date().toISOString(), wraps },
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
        const provider = await this.provider(name);
        const plaintext = await this.audited(
          { action: 'unwrap', collectionId, kek: name, dekVersion: version, ...(col.tenant === undefined ? {} : { tenant: col.tenant }) },
          () => provider.unwrap(toWrapped(wrap), ctx),
        );
        return this.cache.put(this.cacheId(collectionId, version), plaintext);
      } catch (err) {
        firstError ??= err;
      }
    }
    throw firstError ?? new KeyDestroyedError(`DEK version ${version} of collection ${collectionId} has no usable wrap`);
  }

  private async verifyRewrap(provider: KekProvider, old: StoredWrap, fresh: WrappedDek, ctx: DekContext): Promise<void> {
    const a = await provider.unwrap(toWrapped(old), ctx).catch(() => undefined);
    const b = await provider.unwrap(fresh, ctx);
    try {
      if (a && !timingSafeEqual(a, b)) {
        throw new CorruptDataError(`rewrapped DEK version ${ctx.dekVersion} of collection ${ctx.collectionId} does not match the original`, { reason: 'rewrap' });
      }
    } finally {
      a?.fill(0);
      b.fill(0);
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
