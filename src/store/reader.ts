import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError } from '../errors.js';
import { KeyManager, type KeyManagerOptions } from '../keys/key-manager.js';
import { KEYRING_FILE, readKeyringFile } from '../keys/keyring-log.js';
import { CATALOG_FILE, parseCatalog, type CollectionInfo } from './catalog.js';
import { Collection, type CollectionContext } from './collection.js';
import { readCoherent } from './snapshot.js';
import { STATE_FILE, StoreState } from './state.js';
import { STORE_FILE, parseStoreFile } from './store-file.js';

/** One snapshot a read-only store serves: its keyring, its verified state and its collections, loaded in memory. */
export interface ReaderSnapshot {
  storeId: string;
  keys: KeyManager;
  state: StoreState;
  catalog: CollectionInfo[];
  collections: Map<string, Collection>;
}

export interface ReaderSnapshotOptions {
  dir: string;
  /** How the keyring is opened (the caller's KEKs); `reader` is set here. */
  keyOptions: KeyManagerOptions;
  anchor?: string;
  /** The collection context for one snapshot's keys and state. */
  context: (keys: KeyManager, state: StoreState, storeId: string) => CollectionContext;
  attempts?: number;
  /** Told of each attempt that raced the writer (and is read again). */
  onRace?: (attempt: number, err: unknown) => void;
  /**
   * Collections read only their manifests (checked against the snapshot's
   * state) and load their data on first use: for readers that show figures
   * (info, list). A lazy reader's later load reads the files as they are
   * then; one that needs a fixed cut of the data should not be lazy.
   */
  lazy?: boolean;
}

/**
 * Reads one coherent snapshot of a store without writing anything: STATE's
 * bytes first, then STORE, CATALOG and the keyring (so the keyring is at
 * least as new as the head STATE pins), then every collection, each checked
 * against the state exactly as a writer's open checks it. A racing writer
 * step starts the read again (see snapshot.ts).
 */
export function readSnapshot(options: ReaderSnapshotOptions): Promise<ReaderSnapshot> {
  const { dir } = options;
  return readCoherent(dir, () => readOnce(options), {
    ...(options.attempts === undefined ? {} : { attempts: options.attempts }),
    ...(options.onRace === undefined ? {} : { onRace: options.onRace }),
  });
}

async function readOnce(options: ReaderSnapshotOptions): Promise<ReaderSnapshot> {
  const { dir } = options;
  const stateFile = join(dir, STATE_FILE);
  const stateBytes = await fs.readFile(stateFile).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    // A store made by 0.1.0 has no state: its keyring says so
    // (UnsupportedVersionError naming `vectorseal upgrade`), as a writer's open does.
    await readKeyringFile(join(dir, KEYRING_FILE)).catch((e: unknown) => {
      if ((e as { code?: unknown })?.code === 'VS_UNSUPPORTED_VERSION') throw e;
    });
    throw new CorruptDataError('the store state is missing', { file: stateFile, reason: 'missing', cause: err });
  });
  const storeFile = join(dir, STORE_FILE);
  const storeBytes = await fs.readFile(storeFile);
  const storeId = parseStoreFile(storeBytes, storeFile).storeId;
  const catalogFile = join(dir, CATALOG_FILE);
  const catalogBytes = await fs.readFile(catalogFile).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  const keys = await KeyManager.open({ ...options.keyOptions, reader: true });
  let state: StoreState | undefined;
  const collections = new Map<string, Collection>();
  try {
    if (keys.storeId !== storeId) {
      throw new CorruptDataError(`STORE names store ${storeId}, the keyring ${keys.storeId}`, { file: storeFile, reason: 'foreign' });
    }
    state = await StoreState.open({
      dir,
      keys,
      storeId,
      storeBytes,
      ...(options.anchor === undefined ? {} : { anchor: options.anchor }),
      snapshot: { stateBytes, catalogBytes },
    });
    // Entries a writer is creating or dropping right now are not part of any snapshot yet (or any more).
    const listed = catalogBytes === null ? [] : parseCatalog(catalogBytes.toString('utf8'), catalogFile);
    const catalog = listed.filter((i) => i.state === undefined);
    const ctx = options.context(keys, state, storeId);
    for (const info of catalog) collections.set(info.name, await Collection.open(ctx, info, { lazy: options.lazy ?? false }));
    return { storeId, keys, state, catalog, collections };
  } catch (err) {
    for (const c of collections.values()) await c.close({ flush: false }).catch(() => undefined);
    state?.dispose();
    await keys.close().catch(() => undefined);
    throw err;
  }
}

/** Closes a snapshot that was replaced or is no longer needed (collections first, then keys). */
export async function closeSnapshot(s: ReaderSnapshot, keep: ReadonlySet<Collection> = new Set()): Promise<void> {
  for (const c of s.collections.values()) if (!keep.has(c)) await c.close({ flush: false }).catch(() => undefined);
  s.state.dispose();
  await s.keys.close();
}
