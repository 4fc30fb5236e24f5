import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  AlreadyExistsError,
  ClosedError,
  CorruptDataError,
  InvalidArgumentError,
  NotFoundError,
  UnsupportedVersionError,
} from '../errors.js';
import { KEYRING_FILE, KeyManager, defaultLocalKeyDir, type KeyAuditEvent, type ProviderFactory, type RotationProgress, type RotationReport } from '../keys/key-manager.js';
import { LocalKekProvider } from '../keys/local.js';
import { exists, removeStaleTemps, writeFileAtomic } from '../storage/fsutil.js';
import { StoreLock } from '../storage/lock.js';
import { Staging } from '../storage/staging.js';
import { newId } from '../util/ids.js';
import { readCatalog, writeCatalog, type CollectionInfo } from './catalog.js';
import { Collection, collectionDir, type CollectionContext } from './collection.js';
import type { Space } from './layer.js';
import { createLogger, wrapLogger, type Logger } from './logger.js';
import { checkPositiveInt } from './validate.js';

export const STORE_FILE = 'STORE';
const STORE_FORMAT = 'vectorseal-store';
const STORE_VERSION = 1;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SPACES: readonly Space[] = ['l2', 'ip', 'cosine'];

/** Which key provider protects a new store's DEKs. */
export type KeysOption =
  | { provider: 'local'; keyDir?: string }
  | { provider: string; keyId: string; config?: Record<string, string> };

export interface OpenStoreOptions {
  /** The store directory. */
  dir: string;
  /** Key provider for a new store (default: a local master key under keyDir or the default key directory). */
  keys?: KeysOption;
  /** Extra KEK provider factories (AWS KMS, PKCS#11, ...), by provider name. */
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
  /** Segment groups per collection beyond which a flush compacts (default 8). */
  maxSegments?: number;
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

interface StoreFile {
  format: string;
  version: number;
  storeId: string;
  createdAt: string;
  options: Record<string, unknown>;
}

/**
 * An open vector store: one writer process (LOCK), a keyring, and its
 * collections, each fully loaded in memory.
 */
export class Store {
  private readonly collections = new Map<string, Collection>();
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly storeId: string,
    readonly keys: KeyManager,
    private readonly lock: StoreLock,
    private readonly staging: Staging,
    private readonly logger: Logger,
    private readonly options: OpenStoreOptions,
    private catalog: CollectionInfo[],
  ) {}

  /** @internal use {@link openStore}. */
  static async open(options: OpenStoreOptions): Promise<Store> {
    if (!options || typeof options.dir !== 'string' || options.dir.length === 0) {
      throw new InvalidArgumentError('"dir" expected a directory path');
    }
    const durability = options.durability ?? 'batch';
    if (durability !== 'batch' && durability !== 'none') throw new InvalidArgumentError(`"durability" expected 'batch' or 'none', got "${String(durability)}"`);
    const dir = resolve(options.dir);
    const storeFile = join(dir, STORE_FILE);
    const isStore = await exists(storeFile);
    if (!isStore && !options.create) throw new NotFoundError(`no vectorseal store in ${dir} (create one with create: true or \`vectorseal init\`)`);
    if (!isStore) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = await StoreLock.acquire(dir);
    const logger = options.logger ? wrapLogger(options.logger) : createLogger();
    let staging: Staging | undefined;
    let keys: KeyManager | undefined;
    try {
      staging = await Staging.open(options.stagingDir);
      await removeStaleTemps(dir);
      let storeId: string;
      if (isStore) {
        storeId = (await readStoreFile(storeFile)).storeId;
        keys = await KeyManager.open(keyOptions(dir, options));
        if (keys.storeId !== storeId) throw new CorruptDataError('keyring belongs to another store', { file: join(dir, KEYRING_FILE), reason: 'foreign' });
      } else {
        storeId = newId();
        keys = await createKeyring(dir, storeId, options);
        const body: StoreFile = { format: STORE_FORMAT, version: STORE_VERSION, storeId, createdAt: new Date().toISOString(), options: { durability } };
        await writeFileAtomic(storeFile, Buffer.from(`${JSON.stringify(body, null, 2)}\n`), 0o644);
        logger.info({ dir, storeId }, 'store created');
      }
      const store = new Store(dir, storeId, keys, lock, staging, logger, { ...options, durability }, await readCatalog(dir));
      for (const info of store.catalog) store.collections.set(info.name, await Collection.open(store.context(), info));
      logger.debug({ dir, collections: store.catalog.length }, 'store opened');
      return store;
    } catch (err) {
      await keys?.close().catch(() => undefined);
      await staging?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  /** Creates a collection with its own DEK. */
  async createCollection(name: string, options: CreateCollectionOptions): Promise<Collection> {
    this.assertOpen();
    checkName(name);
    if (this.collections.has(name)) throw new AlreadyExistsError(`collection "${name}" already exists`);
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('"options" expected an object with at least "dim"');
    const dim = checkPositiveInt(options.dim, 'dim', 65_536);
    const space = options.space ?? 'l2';
    if (!SPACES.includes(space)) throw new InvalidArgumentError(`"space" expected one of ${SPACES.join(', ')}, got "${String(space)}"`);
    if (options.tenant !== undefined && (typeof options.tenant !== 'string' || !NAME.test(options.tenant))) {
      throw new InvalidArgumentError('"tenant" expected 1-128 characters of A-Z a-z 0-9 . _ -');
    }
    const info: CollectionInfo = {
      id: newId(),
      name,
      dim,
      space,
      ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
      M: options.M === undefined ? 16 : checkPositiveInt(options.M, 'M', 256),
      efConstruction: options.efConstruction === undefined ? 200 : checkPositiveInt(options.efConstruction, 'efConstruction', 10_000),
      createdAt: new Date().toISOString(),
    };
    await this.keys.addCollection(info.id, { name, ...(info.tenant === undefined ? {} : { tenant: info.tenant }) });
    const c = await Collection.create(this.context(), info);
    const next = [...this.catalog, info];
    await writeCatalog(this.dir, next);
    this.catalog = next;
    this.collections.set(name, c);
    this.logger.info({ collection: name, dim, space }, 'collection created');
    return c;
  }

  /** An open collection by name; NotFoundError if there is none. */
  collection(name: string): Collection {
    this.assertOpen();
    const c = this.collections.get(name);
    if (!c) throw new NotFoundError(`no collection named "${typeof name === 'string' ? name.slice(0, 128) : typeof name}"`);
    return c;
  }

  listCollections(): CollectionSummary[] {
    this.assertOpen();
    return this.catalog.map((i) => ({
      name: i.name,
      id: i.id,
      dim: i.dim,
      space: i.space,
      tenant: i.tenant,
      count: this.collections.get(i.name)?.count ?? 0,
      createdAt: i.createdAt,
    }));
  }

  /** Drops a collection: forgets it, destroys its DEKs (crypto-shredding), removes its files. */
  async dropCollection(name: string): Promise<void> {
    const c = this.collection(name);
    await c.close({ flush: false });
    const next = this.catalog.filter((i) => i.name !== name);
    await writeCatalog(this.dir, next);
    this.catalog = next;
    this.collections.delete(name);
    await this.keys.destroyCollection(c.info.id);
    await fs.rm(collectionDir(this.dir, c.info.id), { recursive: true, force: true });
    this.logger.info({ collection: name }, 'collection dropped');
  }

  /** Rotates the store's KEK: every DEK is rewrapped, no data file is touched. */
  async rotateKek(options: { kek?: string; onProgress?: (p: RotationProgress) => void } = {}): Promise<RotationReport> {
    this.assertOpen();
    const report = await this.keys.rotateKek(options);
    this.logger.info({ kek: report.kek, from: report.fromVersion, to: report.toVersion, rewrapped: report.rewrapped }, 'KEK rotated');
    return report;
  }

  /** Flushes every collection. */
  async flush(): Promise<void> {
    this.assertOpen();
    for (const c of this.collections.values()) await c.flush();
  }

  /** Flushes (unless told not to) and closes every collection, then releases keys, staging and the lock. */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      for (const c of this.collections.values()) await c.close(options);
    } finally {
      await this.keys.close();
      await this.staging.close();
      await this.lock.release();
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
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('store is closed');
  }
}

/**
 * Opens (or, with `create: true`, creates) a store. The directory gets a
 * write lock for as long as the store is open.
 */
export function openStore(options: OpenStoreOptions): Promise<Store> {
  return Store.open(options);
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError('collection name expected 1-128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)');
  }
}

async function readStoreFile(file: string): Promise<StoreFile> {
  let s: StoreFile;
  try {
    s = JSON.parse(await fs.readFile(file, 'utf8')) as StoreFile;
  } catch (err) {
    throw new CorruptDataError('STORE file does not parse', { file, reason: 'decode', cause: err });
  }
  if (s.format !== STORE_FORMAT) throw new CorruptDataError('not a vectorseal STORE file', { file, reason: 'header' });
  if (s.version !== STORE_VERSION) throw new UnsupportedVersionError(`store format version ${s.version} is not supported (file ${file})`);
  return s;
}

function keyOptions(dir: string, options: OpenStoreOptions) {
  const localKeyDir = options.keys?.provider === 'local' ? (options.keys as { keyDir?: string }).keyDir : undefined;
  return {
    dir,
    ...(localKeyDir === undefined ? {} : { localKeyDir: resolve(localKeyDir) }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    ...(options.principal === undefined ? {} : { principal: options.principal }),
  };
}

async function createKeyring(dir: string, storeId: string, options: OpenStoreOptions): Promise<KeyManager> {
  const keys = options.keys ?? { provider: 'local' };
  if (keys.provider === 'local') {
    const keyDir = resolve((keys as { keyDir?: string }).keyDir ?? defaultLocalKeyDir());
    const keyId = `store-${storeId}`;
    await LocalKekProvider.init({ keyId, keyDir });
    return KeyManager.create({ ...keyOptions(dir, options), storeId, keks: { default: { provider: 'local', keyId, config: { keyDir } } } });
  }
  const k = keys as { provider: string; keyId: string; config?: Record<string, string> };
  return KeyManager.create({
    ...keyOptions(dir, options),
    storeId,
    keks: { default: { provider: k.provider, keyId: k.keyId, ...(k.config === undefined ? {} : { config: k.config }) } },
  });
}
