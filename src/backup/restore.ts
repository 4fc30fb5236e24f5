import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { AlreadyExistsError, CorruptDataError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { KeyManager } from '../keys/key-manager.js';
import type { KeyringData } from '../keys/keyring-file.js';
import { fsyncDir, removeTree, renameFile } from '../util/durable.js';
import { encodeCatalog, readCatalog } from '../store/catalog.js';
import { openStore } from '../store/store.js';
import { copyHashed, isAbsentOrEmpty, mkdirDurable, writeNew } from './files.js';
import { collectionOfPath, snapshotDir, type BackupFileEntry } from './format.js';
import { assertNoExtra, checkFile, pickSnapshot, readTarget } from './target.js';
import { withSnapshotKeys, type BackupKeyOptions } from './verify.js';

/** Put the restored DEKs under another KEK on the way (another region, a new tenant key). */
export interface RewrapOptions {
  /** Name of the new KEK in the restored keyring. */
  name: string;
  /** Which key it is and how this process reaches it (provider, key id, non-secret config), as for `KeyManager.addKek`. */
  entry: { provider: string; keyId: string; config?: Record<string, string> };
  /** Rewrap one tenant's DEKs; default the store's default KEKs (collections without a tenant, and the store's own keys). */
  tenant?: string;
  /** Keep the old KEKs attached too (default: detach them, so only the new KEK opens the restored store). */
  keepOld?: boolean;
}

export interface RestoreOptions extends BackupKeyOptions {
  /** The backup directory. */
  from: string;
  /** The new store directory: must not exist, or be empty. */
  dir: string;
  /** Snapshot number (default the newest). */
  snapshot?: number;
  /** Restore only these collections (by name). */
  collections?: string[];
  stagingDir?: string;
  rewrap?: RewrapOptions;
  onProgress?: (p: { phase: 'verify' | 'copy' | 'open' | 'rewrap'; files: number; totalFiles: number }) => void;
}

export interface RestoreReport {
  dir: string;
  storeId: string;
  snapshot: number;
  collections: { name: string; id: string; count: number }[];
  files: number;
  bytes: number;
  rewrap?: { kek: string; attached: number; detached: string[] };
}

/**
 * Restores a backup snapshot into a new store directory.
 *
 * Before anything is written: the whole backup directory is checked for
 * files no snapshot lists, every file of the snapshot for presence, length
 * and SHA-256, and the snapshot's MAC with its own keyring (so the KEKs must
 * be reachable). Files are then copied into a hidden directory beside the
 * target, hashed again as they are copied, the store is opened there (every
 * DEK unwraps, every segment and WAL file opens), optionally rewrapped, and
 * only then renamed into place. On any failure the target is left as it was.
 *
 * The restored store keeps the backed-up store's id: DEKs are bound to it, so
 * a new id would mean re-encrypting every file. Do not run the original and a
 * restored copy as if they were different stores (see README).
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreReport> {
  if (!options || typeof options.from !== 'string' || typeof options.dir !== 'string' || options.dir.length === 0) {
    throw new InvalidArgumentError('"from" and "dir" expected directory paths');
  }
  const dir = resolve(options.dir);
  if (!(await isAbsentOrEmpty(dir))) throw new AlreadyExistsError(`${dir} exists and is not empty; restore into a new directory`);
  const target = await readTarget(options.from);
  if (dir === target.dir || dir.startsWith(`${target.dir}/`)) throw new InvalidArgumentError('cannot restore into the backup directory');
  assertNoExtra(target);
  const snap = pickSnapshot(target, options.snapshot);
  const m = snap.manifest;

  // Everything is checked before anything is written.
  let done = 0;
  for (const f of m.files) {
    await checkFile(target.dir, f);
    options.onProgress?.({ phase: 'verify', files: ++done, totalFiles: m.files.length });
  }
  await withSnapshotKeys(target, snap.n, options, async () => undefined);

  const snapAbs = join(target.dir, snapshotDir(snap.n));
  const catalog = await readCatalog(snapAbs);
  let ids = new Set(m.collections.map((c) => c.id));
  if (options.collections !== undefined) {
    if (!Array.isArray(options.collections) || options.collections.length === 0)
      throw new InvalidArgumentError('"collections" expected a non-empty list of names');
    ids = new Set(
      options.collections.map((name) => {
        const info = catalog.find((c) => c.name === name);
        if (!info || !ids.has(info.id)) throw new NotFoundError(`snapshot ${snap.n} has no collection named "${name}"`);
        return info.id;
      }),
    );
  }
  const files = m.files.filter((f) => {
    const cid = collectionOfPath(f.path);
    return cid === undefined || ids.has(cid);
  });

  const tmp = join(dirname(dir), `.${basename(dir)}.restore-${randomBytes(6).toString('hex')}`);
  try {
    await mkdirDurable(tmp);
    done = 0;
    for (const f of files) {
      const dest = join(tmp, f.path);
      await mkdirDurable(dirname(dest));
      if (options.collections !== undefined && (f.path === 'CATALOG' || f.path === 'KEYRING')) {
        await writeNew(dest, await subset(target.dir, f, ids, options));
      } else {
        const got = await copyHashed(join(target.dir, f.stored), dest);
        if (got.sha256 !== f.sha256 || got.length !== f.length) {
          throw new CorruptDataError(`backup file for ${f.path} changed while it was being restored`, {
            file: join(target.dir, f.stored),
            reason: 'hash',
          });
        }
      }
      options.onProgress?.({ phase: 'copy', files: ++done, totalFiles: files.length });
    }
    // A collection with no segment (or no WAL) file yet has none in the backup: its directories are made all the same.
    for (const id of ids) for (const sub of ['seg', 'wal']) await mkdirDurable(join(tmp, 'collections', id, sub));
    options.onProgress?.({ phase: 'open', files: done, totalFiles: files.length });
    // A backup holds no STATE (its CATALOG may be a subset, its WAL files a cut): the restored files, verified above, get a fresh one.
    const store = await openStore({
      dir: tmp,
      initializeState: true,
      ...(options.localKeyDir === undefined ? {} : { keys: { provider: 'local' as const, keyDir: options.localKeyDir } }),
      ...(options.keks === undefined ? {} : { keks: options.keks }),
      ...(options.providers === undefined ? {} : { providers: options.providers }),
      ...(options.stagingDir === undefined ? {} : { stagingDir: options.stagingDir }),
      ...(options.audit === undefined ? {} : { audit: options.audit }),
      ...(options.principal === undefined ? {} : { principal: options.principal }),
    });
    let report: RestoreReport;
    try {
      report = {
        dir,
        storeId: store.storeId,
        snapshot: snap.n,
        collections: store.listCollections().map((c) => ({ name: c.name, id: c.id, count: c.count })),
        files: files.length,
        bytes: files.reduce((s, f) => s + f.length, 0),
      };
      if (options.rewrap) {
        options.onProgress?.({ phase: 'rewrap', files: done, totalFiles: files.length });
        report.rewrap = await rewrap(store.keys, options.rewrap);
      }
    } finally {
      await store.close({ flush: false });
    }
    await renameFile(tmp, dir);
    await fsyncDir(dirname(dir));
    return report;
  } catch (err) {
    await removeTree(tmp).catch(() => undefined);
    throw err;
  }
}

/** A CATALOG or KEYRING of the snapshot restricted to some collections. */
async function subset(root: string, f: BackupFileEntry, ids: Set<string>, options: RestoreOptions): Promise<Buffer> {
  const file = join(root, f.stored);
  if (f.path === 'CATALOG') {
    const all = await readCatalog(dirname(file));
    return encodeCatalog(all.filter((c) => ids.has(c.id)));
  }
  // The keyring is verified under its MAC key (so with the caller's KEKs) and the subset MACed under the same key.
  const keys = await KeyManager.open({
    dir: dirname(file),
    file,
    ...(options.keks === undefined ? {} : { keks: options.keks }),
    ...(options.localKeyDir === undefined ? {} : { localKeyDir: resolve(options.localKeyDir) }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
  });
  try {
    const ring: KeyringData = {
      ...keys.keyring,
      collections: Object.fromEntries(Object.entries(keys.keyring.collections).filter(([id]) => ids.has(id))),
    };
    return keys.encodeKeyring(ring);
  } finally {
    await keys.close();
  }
}

type Keys = Awaited<ReturnType<typeof openStore>>['keys'];

async function rewrap(keys: Keys, r: RewrapOptions): Promise<NonNullable<RestoreReport['rewrap']>> {
  const scope = r.tenant === undefined ? {} : { tenant: r.tenant };
  const before = r.tenant === undefined ? [...keys.keyring.defaultKeks] : [...keys.tenant(r.tenant).keks];
  if (!Object.prototype.hasOwnProperty.call(keys.keyring.keks, r.name)) await keys.addKek(r.name, r.entry);
  const attached = await keys.attachKek(r.name, scope);
  const detached: string[] = [];
  if (!r.keepOld) {
    for (const old of before.filter((k) => k !== r.name)) {
      await keys.detachKek(old, scope);
      detached.push(old);
    }
    // Prove the new wraps open: nothing cached, every DEK in scope unwrapped through the KEKs left.
    keys.evict();
    const ring = keys.keyring;
    for (const [cid, col] of [...Object.entries(ring.collections), ...Object.entries(ring.system ?? {})]) {
      if (col.tenant !== r.tenant) continue;
      for (const d of col.deks) if (d.state !== 'destroyed') await keys.withDek(cid, d.version, () => undefined);
    }
  }
  return { kek: r.name, attached, detached };
}
