import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DestinationStream } from 'pino';
import { AuditTrail, auditFilePath, type AuditHead } from '../audit/index.js';
import { AlreadyExistsError, ClosedError, CorruptDataError, InvalidArgumentError, NotFoundError, ReadOnlyError } from '../errors.js';
import type { DekCacheOptions } from '../keys/dek-cache.js';
import { checkKekConfigs, defaultLocalKeyDir, type KekConfig } from '../keys/kek-config.js';
import { KeyManager, type KeyAuditEvent, type ProviderFactory, type RotationProgress, type RotationReport } from '../keys/key-manager.js';
import type { RotationPolicy, TenantEntry } from '../keys/keyring-file.js';
import { LocalKekProvider, MASTER_KEY_ENV } from '../keys/local.js';
import { exists, mkdirs, removeStaleTemps, removeTree, writeFileAtomic } from '../util/durable.js';
import { StoreLock } from '../storage/lock.js';
import { Staging } from '../storage/staging.js';
import { crashPoint } from '../util/crash.js';
import { newId } from '../util/ids.js';
import { AuditSink } from './audit-sink.js';
import { createCollectionFiles } from './create-batch.js';
import { CATALOG_FILE, readCatalog, type CollectionInfo } from './catalog.js';
import { STATE_FILE, StoreState, initializeStoreState } from './state.js';
import { checkCatalogEntries, recoverCatalog } from './catalog-recovery.js';
import { Collection, collectionDir, type CollectionContext } from './collection.js';
import type { Space } from './layer.js';
import { createLogger, wrapLogger, type Logger } from './logger.js';
import { checkIntInRange, checkPositiveInt } from './validate.js';
import { checkSameOptions } from './collection-options.js';
import type { Metadata } from './metadata.js';
import type { ReencryptionProgress, ReencryptionReport } from './reencrypt.js';
import { closeSnapshot, readSnapshot, type ReaderSnapshotOptions } from './reader.js';
import { DEFAULT_RETIRED_FILE_GRACE_MS, RetiredFiles } from './retired-files.js';
import { STORE_FILE, STORE_FORMAT, STORE_VERSION, parseStoreFile, type StoreFile } from './store-file.js';
import { TenantLifecycle, type MaintenanceReport, type TenantKekOption } from './tenants.js';

export { STORE_FILE } from './store-file.js';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SPACES: readonly Space[] = ['l2', 'ip', 'cosine'];

/**
 * Which key provider protects a new store's DEKs (its KEK "default"). On
 * open, a local `keyDir` is where local KEKs are found, and a provider with a
 * key id configures the KEK "default", as `keks` would.
 */
export type KeysOption = { provider: 'local'; keyDir?: string } | { provider: string; keyId: string; config?: Record<string, string> };

export interface OpenStoreOptions {
  /** The store directory. */
  dir: string;
  /**
   * Key provider for a new store (default: a local master key under keyDir
   * or the default key directory, or VECTORSEAL_MASTER_KEY when set).
   */
  keys?: KeysOption;
  /**
   * Every KEK this process may contact, by the name the keyring gives it:
   * provider, key id and settings (region, endpoint, key directory, PKCS#11
   * module, token and PIN source). The keyring only binds names to keys: a KEK
   * it names that is not configured here (and is not a local key in the
   * local key directory) is never contacted.
   */
  keks?: Record<string, KekConfig>;
  /** KEK provider factories by provider name (custom providers, a PIN fetched by the program). */
  providers?: Record<string, ProviderFactory>;
  /** Create the store when the directory holds none. */
  create?: boolean;
  /** Where hnswlib's files are staged; default a RAM-backed location (/dev/shm). */
  stagingDir?: string;
  /** 'batch' (default): every write is fsynced before it resolves; 'none': left to the OS. */
  durability?: 'batch' | 'none';
  /** A pino logger; our redaction is applied on top. Default: silent unless VECTORSEAL_LOG_LEVEL is set. */
  logger?: Logger;
  /** The identity recorded in key audit events. */
  principal?: string;
  /** Receives one event per key use. */
  audit?: (event: KeyAuditEvent) => void;
  /** Segment groups per collection beyond which the background compaction merges the smallest adjacent run (default 8). */
  maxSegments?: number;
  /**
   * Unflushed records per collection beyond which a flush starts in the
   * background, bounding the WAL and its replay on open (default 100,000;
   * 0 turns it off: flush yourself, or on close).
   */
  autoFlushRecords?: number;
  /** Another destination for the audit trail's lines (a log shipper); the trail file `<dir>/audit.log` is always written. */
  auditDestination?: DestinationStream | NodeJS.WritableStream;
  /** Run maintenance (due shredding, rotations) when the store opens and some is due. Default true. */
  maintainOnOpen?: boolean;
  /**
   * Opens every collection lazily: only its sealed manifest is read, and its
   * segments and WAL load on its first asynchronous operation (or
   * `collection.load()`); synchronous reads refuse until then. For callers
   * that need no vectors (info, listing, stats, KEK rotation). Default false.
   */
  lazy?: boolean;
  /** The clock maintenance goes by (tests inject one). Default: the system clock. */
  clock?: () => Date;
  /** Unwrapped-DEK cache: TTL and use limit (a KEK disabled in its provider takes effect once the TTL passes). */
  keyCache?: DekCacheOptions;
  /**
   * A file outside the data directory where the store keeps its state's
   * generation and MAC after every state write (e.g. beside the local key
   * directory). With it, a rollback of the whole data directory to an older
   * complete copy is refused with a RollbackError naming STATE; without it,
   * that rollback cannot be detected. Created on first use.
   */
  freshnessAnchor?: string;
  /**
   * Open a read-only snapshot instead of the store for writing: no lock is
   * taken (a writer in another process may hold it), no file is written, and
   * every file read is verified as a writer's open verifies it. Writes throw
   * ReadOnlyError; {@link Store.refresh} moves to a newer snapshot.
   */
  readOnly?: boolean;
  /**
   * How long a writer keeps files a flush, compaction or re-encryption made
   * obsolete before removing them, so a reader reading the snapshot that
   * still lists them finds them (default 30,000 ms; close removes them at
   * once). A reader that finds one gone anyway reads a newer snapshot.
   */
  retiredFileGraceMs?: number;
  /**
   * @internal For restore and upgrade: a store without STATE gets one built
   * from its files as they are (which the caller has verified), instead of
   * the typed error naming STATE.
   */
  initializeState?: boolean;
}

export interface CreateCollectionOptions {
  dim: number;
  space?: Space;
  tenant?: string;
  /** HNSW links per node (default 16). */
  M?: number;
  /** HNSW build breadth (default 200). */
  efConstruction?: number;
}

/** A collection as `listCollections` describes it (no data, no keys). */
export interface CollectionSummary {
  name: string;
  id: string;
  dim: number;
  space: Space;
  tenant: string | undefined;
  count: number;
  createdAt: string;
}

/**
 * An open vector store: one writer process (LOCK), a keyring, and its
 * collections, each fully loaded in memory. Opened with `readOnly: true`, a
 * snapshot of the store beside that writer (see reader.ts, snapshot.ts).
 */
export class Store {
  private readonly collections = new Map<string, Collection>();
  /** Collections being created, by name. */
  private readonly creating = new Map<string, Promise<unknown>>();
  private closed = false;
  private readonly lifecycle: TenantLifecycle;
  /** A refresh under way (a reader's), shared by concurrent callers. */
  private refreshing: Promise<void> | undefined;
  /** Obsolete files waiting out the grace period readers get (a writer's). */
  private readonly retired: RetiredFiles;

  private constructor(
    readonly dir: string,
    readonly storeId: string,
    private currentKeys: KeyManager,
    /** Undefined for a read-only store, which takes no lock. */
    private readonly lock: StoreLock | undefined,
    private readonly staging: Staging,
    private readonly logger: Logger,
    private readonly options: OpenStoreOptions,
    private catalog: CollectionInfo[],
    private readonly audit: AuditSink,
    private state: StoreState,
  ) {
    this.retired = new RetiredFiles(options.retiredFileGraceMs ?? DEFAULT_RETIRED_FILE_GRACE_MS);
    this.lifecycle = new TenantLifecycle({
      keys: currentKeys,
      audit,
      logger,
      clock: options.clock ?? (() => new Date()),
      localKeyDir: () => localKeyDirOf(currentKeys, options),
      collections: () => [...this.collections.values()],
      removeCollection: (c) => this.removeShredded(c),
    });
  }

  /** The store's key manager (a read-only store's is the current snapshot's). */
  get keys(): KeyManager {
    return this.currentKeys;
  }

  /** Whether the store was opened with `readOnly: true` (a snapshot; writes throw ReadOnlyError). */
  get readOnly(): boolean {
    return this.lock === undefined;
  }

  /** @internal use {@link openStore}. */
  static async open(options: OpenStoreOptions): Promise<Store> {
    if (!options || typeof options.dir !== 'string' || options.dir.length === 0) {
      throw new InvalidArgumentError('"dir" expected a directory path');
    }
    const durability = options.durability ?? 'batch';
    if (durability !== 'batch' && durability !== 'none')
      throw new InvalidArgumentError(`"durability" expected 'batch' or 'none', got "${String(durability)}"`);
    const autoFlush = options.autoFlushRecords;
    if (autoFlush !== undefined && (!Number.isSafeInteger(autoFlush) || autoFlush < 0)) {
      throw new InvalidArgumentError(`"autoFlushRecords" expected a non-negative integer, got ${String(autoFlush)}`);
    }
    const grace = options.retiredFileGraceMs;
    if (grace !== undefined && (!Number.isSafeInteger(grace) || grace < 0)) {
      throw new InvalidArgumentError(`"retiredFileGraceMs" expected a non-negative integer, got ${String(grace)}`);
    }
    if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') {
      throw new InvalidArgumentError('"readOnly" expected a boolean');
    }
    const dir = resolve(options.dir);
    if (options.readOnly) return Store.openReadOnly(options, dir);
    const storeFile = join(dir, STORE_FILE);
    const isStore = await exists(storeFile);
    if (!isStore && !options.create)
      throw new NotFoundError(`no vectorseal store in ${dir} (create one with create: true or \`vectorseal init\`)`);
    if (!isStore) await mkdirs(dir, 0o700);
    const lock = await StoreLock.acquire(dir);
    const logger = options.logger ? wrapLogger(options.logger) : createLogger();
    const audit = new AuditSink(logger, options.audit);
    options = { ...options, audit: (e) => audit.key(e) };
    let staging: Staging | undefined;
    let keys: KeyManager | undefined;
    let state: StoreState | undefined;
    try {
      staging = await Staging.open(options.stagingDir);
      await removeStaleTemps(dir);
      let storeId: string;
      const anchor = options.freshnessAnchor === undefined ? {} : { anchor: checkAnchorPath(options.freshnessAnchor, dir) };
      if (isStore) {
        const storeBytes = await fs.readFile(storeFile);
        storeId = parseStoreFile(storeBytes, storeFile).storeId;
        keys = await KeyManager.open(keyOptions(dir, options));
        // The keyring is authenticated; a store id that disagrees with it is STORE's damage.
        if (keys.storeId !== storeId)
          throw new CorruptDataError(`STORE names store ${storeId}, the keyring ${keys.storeId}`, { file: storeFile, reason: 'foreign' });
        if (options.initializeState && !(await exists(join(dir, STATE_FILE)))) await initializeStoreState({ dir, keys, storeId });
        const km = keys;
        const explainCatalog = async (): Promise<void> => {
          await checkCatalogEntries(dir, km, await readCatalog(dir), await exists(join(dir, CATALOG_FILE)));
        };
        state = await StoreState.open({ dir, keys, storeId, storeBytes, ...anchor, explainCatalog });
      } else {
        storeId = newId();
        keys = await createKeyring(dir, storeId, options);
        const body: StoreFile = {
          format: STORE_FORMAT,
          version: STORE_VERSION,
          storeId,
          createdAt: new Date().toISOString(),
          options: { durability },
        };
        const storeBytes = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
        // STATE first: STORE is what makes the directory a store, so it is written last.
        state = await StoreState.create({ dir, keys, storeId, storeBytes, ...anchor });
        await writeFileAtomic(storeFile, storeBytes, 0o644);
        logger.info({ dir, storeId }, 'store created');
      }
      const st = state;
      audit.attach(await openAuditTrail(dir, keys, options, st.recordedAuditHead));
      st.auditHead = async () => {
        const head = audit.head();
        await audit.durable();
        return head;
      };
      const catalog = await recoverCatalog(
        { dir, keys, logger, writeCatalog: (c) => st.writeCatalog(dir, c), forget: (id) => st.removeCollection(id) },
        await readCatalog(dir),
        await exists(join(dir, CATALOG_FILE)),
      );
      const store = new Store(dir, storeId, keys, lock, staging, logger, { ...options, durability }, catalog, audit, st);
      for (const info of store.catalog)
        store.collections.set(info.name, await Collection.open(store.context(), info, { lazy: options.lazy ?? false }));
      audit.record({ action: 'open', outcome: 'ok', details: { collections: store.catalog.length, created: !isStore } });
      await audit.durable();
      logger.debug({ dir, collections: store.catalog.length }, 'store opened');
      if (options.maintainOnOpen ?? true) {
        try {
          await store.lifecycle.maintainIfDue();
        } catch (err) {
          await store.close({ flush: false }).catch(() => undefined);
          throw err;
        }
      }
      return store;
    } catch (err) {
      await audit.close().catch(() => undefined);
      state?.dispose();
      await keys?.close().catch(() => undefined);
      await staging?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  /** A read-only store: the first snapshot (see {@link OpenStoreOptions.readOnly}). */
  private static async openReadOnly(options: OpenStoreOptions, dir: string): Promise<Store> {
    if (options.create) throw new InvalidArgumentError('"readOnly" and "create" exclude each other: a reader never creates a store');
    if (options.initializeState) throw new InvalidArgumentError('"readOnly" and "initializeState" exclude each other');
    if (!(await exists(join(dir, STORE_FILE)))) throw new NotFoundError(`no vectorseal store in ${dir}`);
    const logger = options.logger ? wrapLogger(options.logger) : createLogger();
    // No trail: a reader writes no file. Its key uses go to the `audit` callback.
    const audit = new AuditSink(logger, options.audit, true);
    options = { ...options, audit: (e) => audit.key(e), maintainOnOpen: false };
    const staging = await Staging.open(options.stagingDir);
    try {
      const snap = await readSnapshot(readerOptions(dir, options, staging, logger));
      const store = new Store(dir, snap.storeId, snap.keys, undefined, staging, logger, options, snap.catalog, audit, snap.state);
      for (const [name, c] of snap.collections) store.collections.set(name, c);
      logger.debug({ dir, collections: snap.catalog.length, generation: snap.state.generation }, 'store snapshot opened read-only');
      return store;
    } catch (err) {
      await staging.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * A read-only store moves to the store's newest snapshot: read and
   * verified whole (as on open) before anything is swapped, then swapped at
   * once, so a search sees either snapshot, never a mix. Collection objects
   * handed out before stay valid and serve the new snapshot; a collection
   * dropped meanwhile is closed. On a writable store: nothing to do, it is
   * always current.
   */
  async refresh(): Promise<void> {
    this.assertOpen();
    if (!this.readOnly) return;
    this.refreshing ??= this.refreshNow().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async refreshNow(): Promise<void> {
    const snap = await readSnapshot(readerOptions(this.dir, this.options, this.staging, this.logger));
    if (snap.storeId !== this.storeId || this.closed) {
      await closeSnapshot(snap);
      if (this.closed) throw new ClosedError('store is closed');
      throw new CorruptDataError(`the store directory now holds store ${snap.storeId}, not ${this.storeId}`, {
        file: join(this.dir, STORE_FILE),
        reason: 'foreign',
      });
    }
    const old = { keys: this.currentKeys, state: this.state, collections: new Map(this.collections) };
    const kept = new Set<Collection>();
    this.collections.clear();
    for (const [name, fresh] of snap.collections) {
      const prev = old.collections.get(name);
      // The same collection (same id): its handle takes the new contents, so callers' references stay good.
      if (prev && prev.info.id === fresh.info.id) {
        prev.adopt(fresh);
        kept.add(prev);
        this.collections.set(name, prev);
      } else {
        this.collections.set(name, fresh);
      }
    }
    this.catalog = snap.catalog;
    this.currentKeys = snap.keys;
    this.state = snap.state;
    for (const c of old.collections.values()) if (!kept.has(c)) await c.close({ flush: false }).catch(() => undefined);
    old.state.dispose();
    await old.keys.close();
  }

  /** Creates a collection with its own DEK. */
  async createCollection<M extends object = Metadata>(name: string, options: CreateCollectionOptions): Promise<Collection<M>> {
    if (options === null || typeof options !== 'object') {
      this.assertOpen();
      checkName(name);
      throw new InvalidArgumentError('"options" expected an object with at least "dim"');
    }
    const [c] = await this.createCollections([{ ...options, name }]);
    return c as Collection<M>;
  }

  /**
   * Creates many collections at once, each with its own DEK: one keyring
   * record and two catalog writes for the whole batch, and one STATE write
   * per group of 256 collections (create-batch.ts), so the cost of creating
   * 10,000 collections is their files' fsyncs, not 10,000 rewrites of
   * CATALOG or STATE. The batch is checked whole first; on failure none of
   * it remains.
   */
  async createCollections(specs: readonly (CreateCollectionOptions & { name: string })[]): Promise<Collection[]> {
    this.assertWritable();
    if (!Array.isArray(specs) || specs.length === 0)
      throw new InvalidArgumentError('"collections" expected a non-empty array of { name, dim, ... }');
    const seen = new Set<string>();
    const infos: CollectionInfo[] = specs.map((options) => {
      if (options === null || typeof options !== 'object')
        throw new InvalidArgumentError('"options" expected an object with at least "dim"');
      const name = options.name;
      checkName(name);
      if (this.collections.has(name) || this.creating.has(name) || seen.has(name))
        throw new AlreadyExistsError(`collection "${name}" already exists`);
      seen.add(name);
      const dim = checkPositiveInt(options.dim, 'dim', 65_536);
      const space = options.space ?? 'l2';
      if (!SPACES.includes(space)) throw new InvalidArgumentError(`"space" expected one of ${SPACES.join(', ')}, got "${String(space)}"`);
      if (options.tenant !== undefined && (typeof options.tenant !== 'string' || !NAME.test(options.tenant))) {
        throw new InvalidArgumentError('"tenant" expected 1-128 characters of A-Z a-z 0-9 . _ -');
      }
      return {
        id: newId(),
        name,
        dim,
        space,
        ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
        // At least 2: hnswlib derives its level factor from 1/ln(M).
        M: options.M === undefined ? 16 : checkIntInRange(options.M, 'M', 2, 256),
        efConstruction: options.efConstruction === undefined ? 200 : checkPositiveInt(options.efConstruction, 'efConstruction', 10_000),
        createdAt: new Date().toISOString(),
      };
    });
    // Claimed at once: a second call for one of these names while this one awaits is refused, not a second collection.
    const run = this.createBatch(infos);
    for (const info of infos) this.creating.set(info.name, run);
    try {
      return await run;
    } finally {
      for (const info of infos) this.creating.delete(info.name);
    }
  }

  private async createBatch(infos: CollectionInfo[]): Promise<Collection[]> {
    // Keys, then marked catalog entries, then files, then the entries unmarked:
    // each crash leaves a state the next open finishes or undoes (catalog-recovery.ts).
    await this.keys.addCollections(
      infos.map((info) => ({ id: info.id, name: info.name, ...(info.tenant === undefined ? {} : { tenant: info.tenant }) })),
    );
    crashPoint('create:keys-written');
    const undo = async (): Promise<void> => {
      // Undone in the order an open would undo it; if this fails too, the marked entries let the next open finish the job.
      await this.keys.destroyCollections(infos.map((info) => info.id));
      for (const info of infos) {
        await removeTree(collectionDir(this.dir, info.id));
        this.state.removeCollection(info.id);
      }
      await this.state.writeCatalog(this.dir, this.catalog);
    };
    try {
      await this.state.writeCatalog(this.dir, [...this.catalog, ...infos.map((info) => ({ ...info, state: 'creating' as const }))]);
    } catch (err) {
      await undo().catch(() => undefined);
      throw err;
    }
    crashPoint('create:catalog-marked');
    let made: Collection[];
    try {
      // In groups sharing their STATE write and directory fsyncs (create-batch.ts); a lone collection as before.
      made =
        infos.length === 1
          ? [await Collection.create(this.context(), infos[0] as CollectionInfo)]
          : await createCollectionFiles(this.context(), infos);
    } catch (err) {
      await undo().catch(() => undefined);
      throw err;
    }
    crashPoint('create:files-written');
    const next = [...this.catalog, ...infos];
    await this.state.writeCatalog(this.dir, next);
    this.catalog = next;
    for (const c of made) {
      this.collections.set(c.info.name, c);
      this.logger.info({ collection: c.info.name, dim: c.info.dim, space: c.info.space }, 'collection created');
    }
    await this.audit.durable();
    return made;
  }

  /**
   * The collection `name`, created with `options` when there is none. An
   * existing collection must match the options given (dim, space, tenant,
   * M, efConstruction): a mismatch is an InvalidArgumentError, never a
   * silently different collection.
   */
  async getOrCreateCollection<M extends object = Metadata>(name: string, options: CreateCollectionOptions): Promise<Collection<M>> {
    this.assertOpen();
    if (this.readOnly && !this.collections.has(name)) this.assertWritable();
    // A creation under way for this name (another getOrCreate): wait for it, then compare.
    for (let pending = this.creating.get(name); pending; pending = this.creating.get(name)) await pending.catch(() => undefined);
    if (!this.collections.has(name)) return this.createCollection<M>(name, options);
    const c = this.collection<M>(name);
    checkSameOptions(c.info, options);
    return c;
  }

  /** An open collection by name; NotFoundError if there is none. */
  collection<M extends object = Metadata>(name: string): Collection<M> {
    this.assertOpen();
    const c = this.collections.get(name);
    if (!c) throw new NotFoundError(`no collection named "${typeof name === 'string' ? name.slice(0, 128) : typeof name}"`);
    return c as Collection<M>;
  }

  listCollections(): CollectionSummary[] {
    this.assertOpen();
    return this.catalog.map((i) => ({
      name: i.name,
      id: i.id,
      dim: i.dim,
      space: i.space,
      tenant: i.tenant,
      count: this.collections.get(i.name)?.stats().count ?? 0,
      createdAt: i.createdAt,
    }));
  }

  /** Drops a collection: forgets it, destroys its DEKs (crypto-shredding), removes its files. */
  async dropCollection(name: string): Promise<void> {
    this.assertWritable();
    const c = this.collection(name);
    await c.close({ flush: false });
    // Marked first, so a crash before the keys are gone is finished on open, not taken for a tampered catalog.
    await this.state.writeCatalog(
      this.dir,
      this.catalog.map((i) => (i.name === name ? { ...i, state: 'dropping' as const } : i)),
    );
    crashPoint('drop:marked');
    const next = this.catalog.filter((i) => i.name !== name);
    this.catalog = next;
    this.collections.delete(name);
    await this.keys.destroyCollection(c.info.id);
    crashPoint('drop:keys-destroyed');
    await removeTree(collectionDir(this.dir, c.info.id));
    this.state.removeCollection(c.info.id);
    await this.state.writeCatalog(this.dir, next);
    await this.audit.durable();
    this.logger.info({ collection: name }, 'collection dropped');
  }

  /** Rotates the store's KEK: every DEK is rewrapped, no data file is touched. */
  async rotateKek(options: { kek?: string; onProgress?: (p: RotationProgress) => void } = {}): Promise<RotationReport> {
    this.assertWritable();
    const report = await this.keys.rotateKek(options);
    await this.audit.durable();
    this.logger.info({ kek: report.kek, from: report.fromVersion, to: report.toVersion, rewrapped: report.rewrapped }, 'KEK rotated');
    return report;
  }

  // ----- tenants, key lifecycle, maintenance (see tenants.ts) -------------

  /** Creates a tenant; with `kek` its collections' DEKs are wrapped under its own KEK (local, an AWS KMS ARN, ...). */
  async createTenant(tenant: string, options: { kek?: TenantKekOption; policy?: RotationPolicy } = {}): Promise<TenantEntry> {
    this.assertWritable();
    return this.durably(this.lifecycle.createTenant(tenant, options));
  }

  /** Disables a tenant at once: its collections refuse every operation and their data leaves memory. */
  async disableTenant(tenant: string): Promise<void> {
    this.assertWritable();
    await this.lifecycle.disableTenant(tenant);
    await this.audit.durable();
  }

  async enableTenant(tenant: string): Promise<void> {
    this.assertWritable();
    await this.lifecycle.enableTenant(tenant);
    await this.audit.durable();
  }

  /** Schedules a tenant's crypto-shredding after `days` (7-30, default 30); its keys are refused meanwhile. */
  async scheduleTenantDeletion(tenant: string, options: { days?: number; now?: Date } = {}): Promise<Date> {
    this.assertWritable();
    return this.durably(this.lifecycle.scheduleTenantDeletion(tenant, options));
  }

  async cancelTenantDeletion(tenant: string): Promise<void> {
    this.assertWritable();
    await this.lifecycle.cancelTenantDeletion(tenant);
    await this.audit.durable();
  }

  /** Disables one collection at once (cached DEKs zeroed, data dropped from memory). */
  async disableCollection(name: string): Promise<void> {
    this.assertWritable();
    await this.lifecycle.disableCollection(this.collection(name));
    await this.audit.durable();
  }

  async enableCollection(name: string): Promise<void> {
    this.assertWritable();
    await this.lifecycle.enableCollection(this.collection(name));
    await this.audit.durable();
  }

  /** A new DEK version for a collection, used at once by new files; see {@link reencrypt}. */
  async rekey(name: string, options: { now?: Date } = {}): Promise<number> {
    this.assertWritable();
    return this.durably(this.collection(name).rekey(options));
  }

  /** Rewrites a collection's older segments under its active DEK version and destroys the versions left unused. */
  async reencrypt(name: string, options: { onProgress?: (p: ReencryptionProgress) => void } = {}): Promise<ReencryptionReport> {
    this.assertWritable();
    return this.durably(this.collection(name).reencrypt(options));
  }

  /** Sets the rotation policy of the store, or of one tenant. */
  async setPolicy(policy: RotationPolicy, options: { tenant?: string } = {}): Promise<void> {
    this.assertWritable();
    await this.lifecycle.setPolicy(policy, options);
    await this.audit.durable();
  }

  /**
   * Shreds tenants whose deletion window has passed (keys destroyed, files
   * removed), rotates KEKs and re-keys collections as the policies say, and
   * resumes unfinished re-encryptions. Audited.
   */
  async maintain(
    options: { now?: Date; onProgress?: (collection: string, p: ReencryptionProgress) => void } = {},
  ): Promise<MaintenanceReport> {
    this.assertWritable();
    return this.durably(this.lifecycle.maintain(options));
  }

  /** Flushes every collection. */
  async flush(): Promise<void> {
    this.assertWritable();
    for (const c of this.collections.values()) await c.flush();
  }

  /** Flushes (unless told not to) and closes every collection, then releases keys, staging and the lock. */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.readOnly) {
      await this.refreshing?.catch(() => undefined);
      await closeSnapshot({
        storeId: this.storeId,
        keys: this.currentKeys,
        state: this.state,
        catalog: this.catalog,
        collections: this.collections,
      });
      await this.audit.close();
      await this.staging.close();
      return;
    }
    let clean = false;
    try {
      for (const c of this.collections.values()) await c.close(options);
      await this.retired.removeAll().catch(() => undefined);
      clean = true;
    } finally {
      let head: AuditHead | undefined;
      let audited = true;
      try {
        head = await this.audit.close();
      } catch (err) {
        audited = false;
        this.logger.error({ err: (err as { code?: unknown })?.code ?? 'VS_ERROR' }, 'audit trail close failed');
      }
      // Only a close that lost nothing is recorded as clean: the state then covers every WAL file and the trail's last entry.
      if (clean && audited) {
        await this.state.closeClean(head).catch((err: unknown) => {
          clean = false;
          this.logger.error({ err: (err as { code?: unknown })?.code ?? 'VS_ERROR' }, 'store state write failed');
        });
      } else {
        this.state.dispose();
      }
      await this.keys.close();
      await this.staging.close();
      await this.lock?.release();
    }
  }

  private context(): CollectionContext {
    return {
      storeId: this.storeId,
      storeDir: this.dir,
      keys: this.keys,
      staging: this.staging,
      logger: this.logger,
      durability: this.options.durability ?? 'batch',
      maxSegments: this.options.maxSegments ?? 8,
      autoFlushRecords: this.options.autoFlushRecords ?? 100_000,
      onDenied: (info, operation, err) => this.lifecycle.denied(info, operation, err),
      notePages: (info, pages) => this.lifecycle.notePages(info, pages),
      state: this.state,
      retire: (paths) => this.retired.retire(paths),
      removeRetiredUnder: (dir) => this.retired.removeUnder(dir),
      ...(this.options.lazy ? { lazy: true } : {}),
    };
  }

  /** Forgets a shredded collection: closes it, drops its catalog entry and removes its files. */
  private async removeShredded(c: Collection): Promise<void> {
    await c.close({ flush: false });
    const next = this.catalog.filter((i) => i.id !== c.info.id);
    this.state.removeCollection(c.info.id);
    await this.state.writeCatalog(this.dir, next);
    this.catalog = next;
    this.collections.delete(c.info.name);
    await removeTree(collectionDir(this.dir, c.info.id));
    this.logger.info({ collection: c.info.name }, 'shredded collection removed');
  }

  /**
   * Awaits a lifecycle operation, then makes its audit entries durable before
   * it returns (AuditWriteError when they cannot be). A failed operation's
   * own error wins over the audit's: the trail keeps its failure for the next call.
   */
  private async durably<T>(op: Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await op;
    } catch (err) {
      await this.audit.durable().catch(() => undefined);
      throw err;
    }
    await this.audit.durable();
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('store is closed');
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) {
      throw new ReadOnlyError(`store ${this.dir} was opened read-only (a snapshot): open it without readOnly to change it`);
    }
  }
}

/**
 * Opens (or, with `create: true`, creates) a store. The directory gets a
 * write lock for as long as the store is open; with `readOnly: true` it
 * takes none and opens a verified snapshot beside the writer instead.
 */
export function openStore(options: OpenStoreOptions): Promise<Store> {
  return Store.open(options);
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError('collection name expected 1-128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)');
  }
}

/** The freshness anchor must live outside the data directory, or a rollback of the directory would roll it back too. */
function checkAnchorPath(anchor: unknown, dir: string): string {
  if (typeof anchor !== 'string' || anchor.length === 0) throw new InvalidArgumentError('"freshnessAnchor" expected a file path');
  const path = resolve(anchor);
  if (path === dir || path.startsWith(`${dir}/`)) throw new InvalidArgumentError('"freshnessAnchor" must be outside the store directory');
  return path;
}

/** How a read-only store reads each snapshot: the caller's KEKs, and a collection context that never writes. */
function readerOptions(dir: string, options: OpenStoreOptions, staging: Staging, logger: Logger): ReaderSnapshotOptions {
  return {
    dir,
    keyOptions: keyOptions(dir, options),
    ...(options.lazy === undefined ? {} : { lazy: options.lazy }),
    ...(options.freshnessAnchor === undefined ? {} : { anchor: checkAnchorPath(options.freshnessAnchor, dir) }),
    onRace: (attempt, err) =>
      logger.debug({ attempt, err: (err as { code?: unknown })?.code ?? 'VS_ERROR' }, 'snapshot read raced the writer; reading again'),
    context: (keys, state, storeId) => ({
      storeId,
      storeDir: dir,
      keys,
      staging,
      logger,
      durability: options.durability ?? 'batch',
      maxSegments: options.maxSegments ?? 8,
      autoFlushRecords: 0,
      state,
      readOnly: true,
    }),
  };
}

function keyOptions(dir: string, options: OpenStoreOptions) {
  const localKeyDir = options.keys?.provider === 'local' ? (options.keys as { keyDir?: string }).keyDir : undefined;
  const keks = checkKekConfigs(options.keks);
  // `keys` naming a key configures the KEK "default" (the one a store is created with), unless `keks` does.
  const k = options.keys as { provider: string; keyId?: string; config?: Record<string, string> } | undefined;
  if (k && k.provider !== 'local' && typeof k.keyId === 'string' && !keks['default']) {
    keks['default'] = checkKekConfigs({
      default: { provider: k.provider, keyId: k.keyId, ...(k.config === undefined ? {} : { config: k.config }) },
    })['default'] as KekConfig;
  }
  return {
    dir,
    keks,
    durability: options.durability ?? 'batch',
    ...(localKeyDir === undefined ? {} : { localKeyDir: resolve(localKeyDir) }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    ...(options.principal === undefined ? {} : { principal: options.principal }),
    ...(options.keyCache === undefined ? {} : { cache: options.keyCache }),
  };
}

/** Opens the store's audit trail with the MAC key the keyring keeps for it; it must reach the head the state recorded. */
async function openAuditTrail(
  dir: string,
  keys: KeyManager,
  options: OpenStoreOptions,
  expectHead: AuditHead | undefined,
): Promise<AuditTrail> {
  const lease = await keys.systemKey('audit');
  try {
    return await AuditTrail.open({
      file: auditFilePath(dir),
      macKey: lease.key,
      ...(expectHead === undefined ? {} : { expectHead }),
      ...(options.auditDestination === undefined ? {} : { extraDestination: options.auditDestination }),
      ...(options.principal === undefined ? {} : { principal: options.principal }),
    });
  } finally {
    lease.release();
  }
}

/** Where new local tenant KEKs go: the caller's local key directory. */
function localKeyDirOf(keys: KeyManager, options: OpenStoreOptions): string {
  const fromOptions = options.keys?.provider === 'local' ? (options.keys as { keyDir?: string }).keyDir : undefined;
  const own = keys.kekConfigs['default'];
  return resolve(fromOptions ?? (own?.provider === 'local' ? own.config?.['keyDir'] : undefined) ?? keys.registry.localKeyDir);
}

async function createKeyring(dir: string, storeId: string, options: OpenStoreOptions): Promise<KeyManager> {
  const configured = checkKekConfigs(options.keks)['default'];
  const keys =
    options.keys ??
    (configured
      ? { provider: configured.provider, keyId: configured.keyId, ...(configured.config ? { config: configured.config } : {}) }
      : { provider: 'local' });
  if (keys.provider === 'local' && !('keyId' in keys)) {
    const keyId = `store-${storeId}`;
    const given = (keys as { keyDir?: string }).keyDir;
    // VECTORSEAL_MASTER_KEY at init is the store's key: nothing is written to any key directory.
    if (given === undefined && process.env[MASTER_KEY_ENV]) {
      return KeyManager.create({
        ...keyOptions(dir, options),
        configured: keyOptions(dir, options).keks,
        storeId,
        keks: { default: { provider: 'local', keyId, config: { masterKeyEnv: MASTER_KEY_ENV } } },
      });
    }
    const keyDir = resolve(given ?? defaultLocalKeyDir());
    await LocalKekProvider.init({ keyId, keyDir });
    return KeyManager.create({
      ...keyOptions(dir, options),
      configured: keyOptions(dir, options).keks,
      storeId,
      keks: { default: { provider: 'local', keyId, config: { keyDir } } },
    });
  }
  const k = keys as { provider: string; keyId: string; config?: Record<string, string> };
  return KeyManager.create({
    ...keyOptions(dir, options),
    configured: keyOptions(dir, options).keks,
    storeId,
    keks: { default: { provider: k.provider, keyId: k.keyId, ...(k.config === undefined ? {} : { config: k.config }) } },
  });
}
