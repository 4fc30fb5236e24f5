import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import hnswlib from 'hnswlib-node';
import { CorruptDataError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import type { RotationReport } from '../../keys/key-manager.js';
import { SegmentKind, SegmentReader, writeSegment } from '../../storage/segment.js';
import { Staging } from '../../storage/staging.js';
import type { Collection } from '../../store/collection.js';
import { withSerializedIndex } from '../../store/index-io.js';
import type { HnswIndex, Space } from '../../store/layer.js';
import { openStore, type OpenStoreOptions, type Store } from '../../store/store.js';
import { removeFile } from '../../util/durable.js';
import { fileLayer } from '../../util/file-layer.js';

/**
 * hnswlib-node indexes persisted through vectorseal instead of `writeIndex`.
 *
 * `path` becomes a directory: a small vectorseal store (its keyring, audit
 * trail and one collection holding a sealed pointer record) plus the index
 * itself, `index-<generation>.vseg`, in vectorseal's segment format under
 * that collection's own DEK, which the configured KEK wraps. The pointer
 * record (sealed in the collection's WAL and manifest like any record)
 * names the live file with its generation, length, SHA-256, space and
 * dimension; the file's plaintext header binds store, collection,
 * generation and DEK version and is the context of its key commitment.
 *
 * What an attacker who edits the directory can and cannot do: the KEKs the
 * process trusts come only from the `keys` option given here, never from
 * the directory; a changed, truncated, swapped or older index file is
 * caught by the pointer's length and hash (or the segment's
 * authentication); a changed pointer fails the WAL's and manifest's
 * authentication. A rollback of the whole directory to an older complete
 * copy is what no file-only design detects (see the store's freshness
 * anchor), as for any vectorseal store.
 *
 * The serialized graph passes only through a RAM-backed staging file (the
 * store's staging code): no plaintext reaches a disk.
 */

/** The name of the pointer collection inside a sealed index directory. */
export const SEALED_INDEX_COLLECTION = 'hnswlib-index';
const POINTER_ID = 'current';
const SPACES: readonly Space[] = ['l2', 'ip', 'cosine'];

/** The store options other than the directory and the keys (staging directory, providers, logger, principal...). */
export type SealedIndexStoreOptions = Omit<OpenStoreOptions, 'dir' | 'create' | 'keys'>;

export interface WriteSealedOptions extends SealedIndexStoreOptions {
  /** The index's space, as given to `new HierarchicalNSW(space, dim)` (hnswlib does not report it). */
  space: Space;
}

export interface ReadSealedOptions extends SealedIndexStoreOptions {
  /** As hnswlib's readIndex: let addPoint reuse deleted labels' slots. */
  allowReplaceDeleted?: boolean;
}

/** What a sealed index directory holds, from its authenticated pointer. */
export interface SealedIndexInfo {
  generation: number;
  file: string;
  space: Space;
  dim: number;
  count: number;
  dekVersion: number;
}

interface Pointer {
  generation: number;
  file: string;
  length: number;
  sha256: string;
  space: Space;
  dim: number;
  count: number;
  dekVersion: number;
}

/**
 * Seals `index` into the directory `path` (created when missing). Each call
 * writes a new generation and then retires the previous file; a crash at any
 * point leaves the previous generation readable.
 */
export async function writeIndexSealed(
  index: HnswIndex,
  path: string,
  keys: OpenStoreOptions['keys'],
  options: WriteSealedOptions,
): Promise<SealedIndexInfo> {
  if (index === null || typeof index !== 'object' || typeof (index as HnswIndex).writeIndexSync !== 'function') {
    throw new InvalidArgumentError('"index" expected an hnswlib-node HierarchicalNSW');
  }
  if (options === null || typeof options !== 'object' || !SPACES.includes(options.space)) {
    throw new InvalidArgumentError(`"space" expected one of ${SPACES.join(', ')} (the space the index was created with)`);
  }
  const dir = await checkDir(path, true);
  const { space, ...storeOptions } = options;
  // hnswlib-node reports no capacity for an index neither initIndex nor readIndex has built.
  const dim = index.getNumDimensions();
  if (index.getMaxElements() === 0) throw new InvalidArgumentError('"index" is not initialized (call initIndex or readIndex first)');
  return withStore(dir, keys, storeOptions, true, async (store, staging) => {
    const existing = store.listCollections().some((c) => c.name === SEALED_INDEX_COLLECTION);
    const collection = existing
      ? store.collection(SEALED_INDEX_COLLECTION)
      : await store.createCollection(SEALED_INDEX_COLLECTION, { dim: 1, space: 'l2' });
    const previous = existing ? pointerOf(collection, dir) : undefined;
    const generation = (previous?.generation ?? 0) + 1;
    const file = `index-${generation}.vseg`;
    const dekVersion = store.keys.activeDekVersion(collection.info.id);
    const header = { kind: SegmentKind.Index, storeId: store.storeId, collectionId: collection.info.id, segmentId: generation, dekVersion };
    const written = await store.keys.withDek(collection.info.id, dekVersion, (dek) =>
      withSerializedIndex(index, staging, (bytes) => writeSegment(join(dir, file), header, dek, bytes)),
    );
    const pointer: Pointer = {
      generation,
      file,
      length: written.length,
      sha256: written.sha256,
      space,
      dim,
      count: index.getCurrentCount(),
      dekVersion,
    };
    await collection.upsert({ id: POINTER_ID, vector: [0], metadata: { ...pointer } });
    await collection.flush();
    // Files of older generations (and of a write that crashed before its pointer) are retired.
    for (const name of await fs.readdir(dir)) {
      if (/^index-\d+\.vseg$/.test(name) && name !== file) await removeFile(join(dir, name));
    }
    return infoOf(pointer);
  });
}

/** Reads the index sealed in the directory `path`, checking everything against the authenticated pointer. */
export async function readIndexSealed(path: string, keys: OpenStoreOptions['keys'], options: ReadSealedOptions = {}): Promise<HnswIndex> {
  const dir = await checkDir(path, false);
  const { allowReplaceDeleted, ...storeOptions } = options ?? {};
  return withStore(dir, keys, storeOptions, false, async (store, staging) => {
    const collection = pointerCollection(store, dir);
    const p = pointerOf(collection, dir);
    if (!p) throw new CorruptDataError('the sealed index has no pointer record', { file: dir, reason: 'missing' });
    const file = join(dir, p.file);
    return staging.withFile(async (stagingFile) => {
      const out = fileLayer().openSync(stagingFile, 'truncate', 0o600);
      const lease = await store.keys.leaseDek(collection.info.id, p.dekVersion);
      try {
        const reader = await SegmentReader.open(
          file,
          {
            storeId: store.storeId,
            collectionId: collection.info.id,
            kind: SegmentKind.Index,
            segmentId: p.generation,
            dekVersion: p.dekVersion,
            length: p.length,
            sha256: p.sha256,
          },
          () => lease.key,
        );
        try {
          await reader.readInto((bytes) => {
            out.writeSync(bytes);
          });
        } finally {
          await reader.close();
        }
      } finally {
        lease.release();
        out.closeSync();
      }
      // hnswlib reads the staging file only now, after the whole file's hash matched.
      const index = new hnswlib.HierarchicalNSW(p.space, p.dim);
      try {
        index.readIndexSync(stagingFile, allowReplaceDeleted === true);
      } catch (err) {
        throw new CorruptDataError('sealed HNSW index does not load', { file, reason: 'decode', cause: err });
      } finally {
        await removeFile(stagingFile);
      }
      if (index.getCurrentCount() !== p.count || index.getNumDimensions() !== p.dim) {
        throw new CorruptDataError('sealed HNSW index does not match its pointer', { file, reason: 'decode' });
      }
      return index;
    });
  });
}

/** Describes the sealed index in `path` (its authenticated pointer), without loading the graph. */
export async function sealedIndexInfo(
  path: string,
  keys: OpenStoreOptions['keys'],
  options: SealedIndexStoreOptions = {},
): Promise<SealedIndexInfo> {
  const dir = await checkDir(path, false);
  return withStore(dir, keys, options, false, async (store) => {
    const p = pointerOf(pointerCollection(store, dir), dir);
    if (!p) throw new CorruptDataError('the sealed index has no pointer record', { file: dir, reason: 'missing' });
    return infoOf(p);
  });
}

/**
 * Rotates the KEK of the sealed index in `path`: its DEK is rewrapped under
 * a new KEK version; the index file is not touched.
 */
export async function rotateSealedIndexKek(
  path: string,
  keys: OpenStoreOptions['keys'],
  options: SealedIndexStoreOptions = {},
): Promise<RotationReport> {
  const dir = await checkDir(path, false);
  return withStore(dir, keys, options, false, (store) => store.rotateKek());
}

async function checkDir(path: string, create: boolean): Promise<string> {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError('"path" expected the directory of a sealed index');
  const dir = resolve(path);
  const st = await fs.stat(dir).catch(() => undefined);
  if (st && !st.isDirectory())
    throw new InvalidArgumentError(
      `${dir} is a file; a sealed index is a directory (choose a new path; the plaintext index there is not touched)`,
    );
  if (!st && !create) throw new NotFoundError(`no sealed index at ${dir}`);
  return dir;
}

async function withStore<T>(
  dir: string,
  keys: OpenStoreOptions['keys'],
  options: SealedIndexStoreOptions,
  create: boolean,
  fn: (store: Store, staging: Staging) => Promise<T>,
): Promise<T> {
  let store: Store;
  try {
    store = await openStore({ ...options, dir, create, ...(keys === undefined ? {} : { keys }) });
  } catch (err) {
    if (err instanceof NotFoundError && !create) throw new NotFoundError(`no sealed index at ${dir}`, { cause: err });
    throw err;
  }
  let staging: Staging | undefined;
  try {
    staging = await Staging.open(options.stagingDir);
    return await fn(store, staging);
  } finally {
    await staging?.close().catch(() => undefined);
    await store.close();
  }
}

function pointerCollection(store: Store, dir: string): Collection {
  if (!store.listCollections().some((c) => c.name === SEALED_INDEX_COLLECTION)) {
    throw new CorruptDataError('the store holds no sealed index', { file: dir, reason: 'missing' });
  }
  return store.collection(SEALED_INDEX_COLLECTION);
}

function pointerOf(collection: Collection, dir: string): Pointer | undefined {
  const rec = collection.get(POINTER_ID);
  if (!rec) return undefined;
  const m = rec.metadata as Partial<Pointer> | undefined;
  const ok =
    m !== undefined &&
    Number.isSafeInteger(m.generation) &&
    (m.generation as number) > 0 &&
    m.file === `index-${m.generation}.vseg` &&
    Number.isSafeInteger(m.length) &&
    typeof m.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(m.sha256) &&
    SPACES.includes(m.space as Space) &&
    Number.isSafeInteger(m.dim) &&
    (m.dim as number) > 0 &&
    Number.isSafeInteger(m.count) &&
    (m.count as number) >= 0 &&
    Number.isSafeInteger(m.dekVersion) &&
    (m.dekVersion as number) > 0;
  // Authenticated, so only a bug could make it malformed; still refused rather than trusted.
  if (!ok) throw new CorruptDataError('the sealed index pointer is malformed', { file: dir, reason: 'decode' });
  return m as Pointer;
}

function infoOf(p: Pointer): SealedIndexInfo {
  return { generation: p.generation, file: p.file, space: p.space, dim: p.dim, count: p.count, dekVersion: p.dekVersion };
}
