import { promises as fs } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CorruptDataError, InvalidArgumentError, KeyDestroyedError, ReadOnlyError, SnapshotBusyError } from '../errors.js';
import type { KeyringData } from '../keys/keyring-file.js';
import { MANIFEST_FILE, segmentFile } from '../storage/manifest.js';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE } from '../storage/segment.js';
import { fsyncDir, removeFile, removeTree, renameFile, writeFileAtomic } from '../util/durable.js';
import { listWalFiles, readWalHeader, walFileName } from '../storage/wal.js';
import { encodeCatalog } from '../store/catalog.js';
import type { Collection, CollectionCut } from '../store/collection.js';
import type { Store } from '../store/store.js';
import { copyHashed, hashFile, mkdirDurable, tempBeside, walkTree, writeNew } from './files.js';
import {
  BACKUP_FILE,
  BACKUP_KEY_ID,
  BACKUP_KEY_NAME,
  OBJECTS_DIR,
  SNAPSHOTS_DIR,
  computeMac,
  encodeManifest,
  objectPath,
  snapshotDir,
  type BackupBody,
  type BackupCollectionEntry,
  type BackupFileEntry,
} from './format.js';
import { readTarget } from './target.js';

export interface BackupProgress {
  phase: 'copy' | 'seal';
  /** Files handled so far and in all (the total grows as collections are cut). */
  files: number;
  totalFiles: number;
  bytes: number;
}

export interface BackupOptions {
  /** The backup directory: created if missing; later backups into it are incremental. */
  to: string;
  /** Collection names (default: every collection). */
  collections?: string[];
  onProgress?: (p: BackupProgress) => void;
}

export interface BackupReport {
  to: string;
  snapshot: number;
  storeId: string;
  manifest: string;
  collections: { name: string; id: string; generation: number; segmentFiles: number; walFiles: number }[];
  files: number;
  bytes: number;
  /** Content-addressed files written by this backup. */
  copied: number;
  copiedBytes: number;
  /** Content-addressed files an earlier snapshot had already stored (not copied again). */
  reused: number;
  reusedBytes: number;
  /** Stored files that no longer matched their hash and were replaced. */
  repaired: number;
  /** Leftovers of interrupted backups that were removed first. */
  removedLeftovers: number;
  /** Collections left out because their keys are refused (only when no list was given). */
  skipped: { name: string; id: string; code: string }[];
}

/**
 * Backs up a store into `options.to` while it stays open and writable.
 *
 * Every chosen collection is cut (its current WAL file closed; flushes and
 * compactions wait) and all cuts are held together while the files are
 * copied, so the snapshot is one point in time for the whole store. Writes
 * acknowledged before the call are in it; writes made meanwhile go to new
 * WAL files and may or may not be. A collection opened lazily (`lazy: true`)
 * is not loaded for it: its cut is taken from its files and the store state
 * (store/collection-cut.ts), and the restore is the same. Segments and WAL files are stored once by
 * SHA-256 and shared by later snapshots in the same directory (incremental);
 * the manifest, catalog, keyring and STORE file are stored per snapshot. The
 * backup manifest lists every file with its length and SHA-256 and is MACed
 * under the store's `backup` system key. Nothing is decrypted: every byte in
 * a backup is the store's own ciphertext or its plaintext-by-design metadata
 * (catalog, keyring of wrapped keys, STORE).
 *
 * One backup at a time may write into a directory.
 */
export async function backupStore(store: Store, options: BackupOptions): Promise<BackupReport> {
  if (!options || typeof options.to !== 'string' || options.to.length === 0)
    throw new InvalidArgumentError('"to" expected a backup directory path');
  const root = resolve(options.to);
  if (root === store.dir || root.startsWith(`${store.dir}/`))
    throw new InvalidArgumentError('a backup cannot go inside the store directory');
  const skipped: BackupReport['skipped'] = [];
  const chosen = chooseCollections(store, options.collections, skipped);
  // The MAC key must be in the keyring before the keyring is copied; a reader cannot add it (checked before anything is written).
  if (store.readOnly && !Object.hasOwn(store.keys.keyring.system ?? {}, BACKUP_KEY_ID)) {
    throw new ReadOnlyError(
      'this store has no backup key yet: its first backup adds one to the keyring, which needs the store opened for writing',
    );
  }

  await mkdirDurable(join(root, OBJECTS_DIR));
  await mkdirDurable(join(root, SNAPSHOTS_DIR));
  const existing = await readTarget(root);
  if (existing.snapshots.some((s) => s.manifest.storeId !== store.storeId)) {
    throw new InvalidArgumentError(`${root} holds backups of another store; use another directory`);
  }
  const removedLeftovers = await removeLeftovers(root, existing.extra, existing.incomplete);
  const n = Math.max(0, ...existing.snapshots.map((s) => s.n), ...existing.incomplete) + 1;
  const snapRel = snapshotDir(n);
  const snapAbs = join(root, snapRel);
  await mkdirDurable(snapAbs);

  (await store.keys.systemKey(BACKUP_KEY_NAME)).release();

  const files: BackupFileEntry[] = [];
  const entries: BackupCollectionEntry[] = [];
  const report: Omit<BackupReport, 'snapshot' | 'manifest' | 'files' | 'bytes'> = {
    to: root,
    storeId: store.storeId,
    collections: [],
    copied: 0,
    copiedBytes: 0,
    reused: 0,
    reusedBytes: 0,
    repaired: 0,
    removedLeftovers,
    skipped,
  };
  const progress = { files: 0, totalFiles: 3, bytes: 0 };
  const tick = (bytes: number): void => {
    progress.files += 1;
    progress.bytes += bytes;
    options.onProgress?.({ phase: 'copy', ...progress });
  };

  /** Keeps a store file content-addressed; `expect` is the hash the store's manifest records for it. */
  const putShared = async (path: string, src: string, expect?: { sha256: string; length: number }, limit?: number): Promise<void> => {
    if (expect) {
      const dest = join(root, objectPath(expect.sha256));
      const have = await hashFile(dest).catch(() => undefined);
      if (have && have.sha256 === expect.sha256 && have.length === expect.length) {
        files.push({ path, stored: objectPath(expect.sha256), length: expect.length, sha256: expect.sha256 });
        report.reused += 1;
        report.reusedBytes += expect.length;
        tick(expect.length);
        return;
      }
    }
    const tmp = tempBeside(join(root, OBJECTS_DIR, 'object'));
    const got = await copyHashed(src, tmp, 0o600, limit).catch((err: NodeJS.ErrnoException) => {
      // A reader's snapshot lists a file its writer has removed since (after the grace period): a newer snapshot has what it holds.
      if (store.readOnly && err.code === 'ENOENT') {
        const why = `${src} was removed by the writer after this snapshot was read: refresh() and back up again`;
        throw new SnapshotBusyError(why, { cause: err });
      }
      throw err;
    });
    try {
      if (expect && (got.sha256 !== expect.sha256 || got.length !== expect.length)) {
        throw new CorruptDataError(
          'store file does not match the hash its manifest or the store state records; not backing up damaged data',
          {
            file: src,
            reason: 'hash',
          },
        );
      }
      const dest = join(root, objectPath(got.sha256));
      await mkdirDurable(dirname(dest));
      const have = await hashFile(dest).catch(() => undefined);
      // The temp file's directory is fsynced after it loses the entry too: otherwise a power cut
      // brings the temp back, and the backup holds a file no snapshot lists.
      if (have && have.sha256 === got.sha256) {
        await removeFile(tmp);
        await fsyncDir(dirname(tmp));
        report.reused += 1;
        report.reusedBytes += got.length;
      } else {
        if (have) report.repaired += 1;
        await renameFile(tmp, dest);
        await fsyncDir(dirname(dest));
        await fsyncDir(dirname(tmp));
        report.copied += 1;
        report.copiedBytes += got.length;
      }
    } catch (err) {
      await removeFile(tmp);
      throw err;
    }
    files.push({ path, stored: objectPath(got.sha256), ...got });
    tick(got.length);
  };

  /** Keeps a small file in the snapshot's own directory. */
  const putOwn = async (path: string, data: Uint8Array): Promise<void> => {
    const dest = join(snapAbs, path);
    await mkdirDurable(dirname(dest));
    await writeNew(dest, data);
    const got = await hashFile(dest);
    files.push({ path, stored: `${snapRel}/${path}`, ...got });
    tick(got.length);
  };

  const copyCut = async (c: Collection, cut: CollectionCut): Promise<Set<number>> => {
    const rel = `collections/${c.info.id}`;
    const dekVersions = new Set<number>();
    // A reader's cut carries the manifest it loaded (the one on disk may be newer).
    const manifestBytes = cut.manifestBytes ?? (await fs.readFile(join(cut.dir, MANIFEST_FILE)));
    dekVersions.add(decodeSegmentHeader(manifestBytes.subarray(0, SEGMENT_HEADER_SIZE), join(cut.dir, MANIFEST_FILE)).dekVersion);
    const segs = cut.manifest.groups.flatMap((g) => g.files.map((f) => ({ g, f })));
    const wals = (await listWalFiles(join(cut.dir, 'wal'))).filter((s) => s >= cut.firstWalSeq && s <= cut.lastWalSeq);
    for (let s = cut.firstWalSeq; s <= cut.lastWalSeq; s++) {
      if (!wals.includes(s))
        throw new CorruptDataError(`WAL file ${walFileName(s)} is missing from the store`, {
          file: join(cut.dir, 'wal', walFileName(s)),
          reason: 'missing',
        });
    }
    progress.totalFiles += 1 + segs.length + wals.length;
    await putOwn(`${rel}/${MANIFEST_FILE}`, manifestBytes);
    for (const { g, f } of segs) {
      const src = segmentFile(cut.dir, g.id, f.kind);
      const name = src
        .slice(cut.dir.length + 1)
        .split('\\')
        .join('/');
      dekVersions.add(f.dekVersion);
      await putShared(`${rel}/${name}`, src, { sha256: f.sha256, length: f.length });
    }
    for (const s of wals) {
      const src = join(cut.dir, 'wal', walFileName(s));
      dekVersions.add((await readWalHeader(src, { storeId: store.storeId, collectionId: c.info.id, walSeq: s })).dekVersion);
      // A reader's cut ends where its snapshot did: the writer may be appending to the newest file.
      // A lazy cut knows the hash the store state sealed a file with: checked as it is copied (or found stored already).
      await putShared(`${rel}/wal/${walFileName(s)}`, src, cut.walHashes?.get(s), cut.walLengths?.get(s));
    }
    entries.push({ id: c.info.id, generation: cut.manifest.generation, firstWalSeq: cut.firstWalSeq, lastWalSeq: cut.lastWalSeq });
    report.collections.push({
      name: c.info.name,
      id: c.info.id,
      generation: cut.manifest.generation,
      segmentFiles: segs.length,
      walFiles: wals.length,
    });
    return dekVersions;
  };

  try {
    // Hold every collection's cut at once: one point in time for the whole store.
    const cuts: [Collection, CollectionCut][] = [];
    const needed = new Map<string, Set<number>>();
    const underCuts = async (i: number): Promise<void> => {
      const c = chosen[i];
      if (c === undefined) {
        for (const [col, cut] of cuts) needed.set(col.info.id, await copyCut(col, cut));
        // The keyring last, while the cuts still hold: it has every DEK version the files above use.
        const ring = filterKeyring(store.keys.keyring, new Set(chosen.map((x) => x.info.id)));
        for (const [cid, versions] of needed) {
          for (const v of versions) {
            const d = ring.collections[cid]?.deks.find((x) => x.version === v);
            if (!d || d.state === 'destroyed')
              throw new KeyDestroyedError(`collection ${cid} has files under DEK version ${v}, which the keyring no longer holds`);
          }
        }
        await putOwn('KEYRING', store.keys.encodeKeyring(ring));
        await putOwn('STORE', await fs.readFile(join(store.dir, 'STORE')));
        await putOwn('CATALOG', encodeCatalog(chosen.map((x) => x.info)));
        return;
      }
      await c.snapshot(async (cut) => {
        cuts.push([c, cut]);
        await underCuts(i + 1);
      });
    };
    await underCuts(0);

    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    entries.sort((a, b) => (a.id < b.id ? -1 : 1));
    const body: BackupBody = {
      format: 'vectorseal-backup',
      version: 1,
      storeId: store.storeId,
      snapshot: n,
      createdAt: new Date().toISOString(),
      collections: entries,
      files,
    };
    options.onProgress?.({ phase: 'seal', ...progress });
    const lease = await store.keys.leaseDek(BACKUP_KEY_ID, 1);
    let mac: string;
    try {
      mac = computeMac(body, lease.key);
    } finally {
      lease.release();
    }
    const manifest = join(snapAbs, BACKUP_FILE);
    await writeFileAtomic(
      manifest,
      encodeManifest({ ...body, mac: { alg: 'HMAC-SHA-256', key: BACKUP_KEY_ID, keyVersion: 1, value: mac } }),
    );
    await fsyncDir(join(root, SNAPSHOTS_DIR));
    return { ...report, snapshot: n, manifest, files: files.length, bytes: files.reduce((s, f) => s + f.length, 0) };
  } catch (err) {
    // The snapshot never got a manifest: remove what it wrote of its own (shared objects are cleaned by the next backup).
    await removeTree(snapAbs).catch(() => undefined);
    throw err;
  }
}

function chooseCollections(store: Store, names: string[] | undefined, skipped: BackupReport['skipped']): Collection[] {
  if (names === undefined) {
    // By default a collection whose keys are refused (disabled, tenant pending deletion) is left out and reported.
    return store
      .listCollections()
      .map((c) => store.collection(c.name))
      .filter((c) => {
        try {
          store.keys.assertUsable(c.info.id);
          // A collection opened lazily is backed up from its files, unloaded (store/collection-cut.ts).
          if (c.isLoaded || c.awaitsLoad) return true;
          skipped.push({ name: c.info.name, id: c.info.id, code: 'VS_KEY_DISABLED' });
        } catch (err) {
          skipped.push({ name: c.info.name, id: c.info.id, code: (err as { code?: string }).code ?? 'VS_ERROR' });
        }
        return false;
      });
  }
  if (!Array.isArray(names) || names.length === 0)
    throw new InvalidArgumentError('"collections" expected a non-empty list of collection names');
  return [...new Set(names)].map((n) => store.collection(n));
}

/** The keyring restricted to some collections (the store's own keys and every KEK and tenant entry stay). */
function filterKeyring(ring: Readonly<KeyringData>, ids: Set<string>): KeyringData {
  const copy = structuredClone(ring) as KeyringData;
  copy.collections = Object.fromEntries(Object.entries(copy.collections).filter(([id]) => ids.has(id)));
  return copy;
}

/** Removes temp files, incomplete snapshots and stored files no snapshot lists (an interrupted backup's). */
async function removeLeftovers(root: string, extra: string[], incomplete: number[]): Promise<number> {
  let n = 0;
  for (const s of incomplete) {
    await removeTree(join(root, snapshotDir(s)));
    n += 1;
  }
  for (const f of extra) {
    // Only inside objects/ and snapshots/: anything else is not ours to delete.
    const rel = f.slice(root.length + 1);
    if (rel.startsWith(`${OBJECTS_DIR}/`) || rel.startsWith(`${SNAPSHOTS_DIR}/`)) {
      await removeFile(f);
      n += 1;
    }
  }
  // Temp files of our own writes.
  for (const e of await walkTree(root)) {
    if (e.kind === 'file' && /(^|\/)\.[^/]*\.tmp$/.test(e.path)) {
      await removeFile(join(root, e.path));
    }
  }
  return n;
}
