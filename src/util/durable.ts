import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StorageFullError } from '../errors.js';
import { crashPoint } from './crash.js';
import { fileLayer, type DurableFile, type OpenMode } from './file-layer.js';

// Durable file operations built on the file layer (file-layer.ts). Every file
// vectorseal keeps is changed through these or through fileLayer() directly.

/** A full file system as StorageFullError (naming the file, keeping the platform error as cause); any other error as it is. */
export function storageError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  return new StorageFullError(`no space left on the device writing ${path}`, { cause: err });
}

/** Opens `path` for writing through the file layer. */
export function openDurable(path: string, mode: OpenMode, perm = 0o600): Promise<DurableFile> {
  return fileLayer().open(path, mode, perm);
}

/** Fsyncs a directory so that a rename or a new entry in it survives a crash. */
export function fsyncDir(dir: string): Promise<void> {
  return fileLayer().fsyncDir(dir);
}

/** Renames through the file layer (durable only once the directory is fsynced). */
export function renameFile(from: string, to: string): Promise<void> {
  return fileLayer().rename(from, to);
}

/** Writes all of `data` to a new file `tmp`, fsyncs and closes it; removes it on failure. */
async function writeSynced(tmp: string, data: Uint8Array, mode: number, reportAs: string): Promise<void> {
  const file = await fileLayer().open(tmp, 'create', mode);
  try {
    await file.write(data);
    await file.fsync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await removeFile(tmp).catch(() => undefined);
    throw storageError(err, reportAs);
  }
  await file.close();
}

const tempName = (path: string): string => join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

/**
 * Replaces `path` with `data` atomically: write a temp file beside it, fsync
 * it, rename it over the target, fsync the directory. After a crash the path
 * holds either the old or the new contents, never a mix.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempName(path);
  await writeSynced(tmp, data, mode, path);
  crashPoint('atomic:temp-written');
  await fileLayer().rename(tmp, path);
  crashPoint('atomic:renamed');
  await fsyncDir(dirname(path));
}

/**
 * Creates `path` with `data` atomically, failing with EEXIST if it exists:
 * the contents are written and fsynced under a temp name, then hard-linked to
 * the final name (which never overwrites), so the file appears whole or not
 * at all.
 */
export async function createFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempName(path);
  await writeFileDurable(tmp, data, mode);
  crashPoint('atomic:create-temp-written');
  try {
    await fileLayer().link(tmp, path);
    crashPoint('atomic:create-linked');
  } finally {
    await removeFile(tmp);
  }
  await fsyncDir(dirname(path));
}

/**
 * Creates `path` with `data`, whole or not at all, failing with EEXIST if it
 * exists, without making it durable: for files that a crash may lose (a
 * lock, whose holder dies with the crash). Written under a temp name and
 * hard-linked, as {@link createFileAtomic}, but no fsync.
 */
export async function createFileExclusive(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempName(path);
  const file = await fileLayer().open(tmp, 'create', mode);
  try {
    await file.write(data);
  } catch (err) {
    await file.close().catch(() => undefined);
    await removeFile(tmp);
    throw storageError(err, path);
  }
  await file.close();
  try {
    await fileLayer().link(tmp, path);
  } finally {
    await removeFile(tmp);
  }
}

/** Writes a new file that must not exist yet, fsyncs it and its directory. */
export async function writeFileDurable(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const file = await fileLayer().open(path, 'create', mode);
  try {
    await file.write(data);
    await file.fsync();
  } catch (err) {
    throw storageError(err, path);
  } finally {
    await file.close();
  }
  await fsyncDir(dirname(path));
}

/**
 * Writes `data` to `path` (created or replaced in place) with no fsync: for
 * files that are not durable state (exports, config the user asked for).
 */
export async function writeFilePlain(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
  options: { exclusive?: boolean } = {},
): Promise<void> {
  const file = await fileLayer().open(path, options.exclusive === true ? 'create' : 'truncate', mode);
  try {
    await file.write(typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    await file.close();
  }
}

/** Creates a new private directory `<prefix><random>` (like mkdtemp) and returns its path. */
export async function makeTempDir(prefix: string, mode = 0o700): Promise<string> {
  for (;;) {
    const dir = `${prefix}${randomBytes(6).toString('hex')}`;
    try {
      await fileLayer().mkdir(dir, mode);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Removes a file if it is there (like `rm -f`). The removal is durable once its directory is fsynced. */
export async function removeFile(path: string): Promise<void> {
  try {
    await fileLayer().unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Removes a directory tree if it is there (like `rm -rf`), children first,
 * through the file layer. Nothing is fsynced: callers that need the removal
 * to survive a crash fsync the parent.
 */
export async function removeTree(path: string): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(path, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') return removeFile(path);
    throw err;
  }
  for (const e of entries) {
    const child = join(path, e.name);
    if (e.isDirectory()) await removeTree(child);
    else await removeFile(child);
  }
  try {
    await fileLayer().rmdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Removes temp files left by an interrupted atomic write. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith('.') && n.endsWith('.tmp')) await removeFile(join(dir, n));
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates `dir` and missing parents like `mkdir -p`, without fsyncs.
 * Returns the first directory created, or undefined when `dir` existed.
 */
export async function mkdirs(dir: string, mode = 0o700): Promise<string | undefined> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const kind = await fs.stat(d).then(
      (s) => (s.isDirectory() ? 'dir' : 'other'),
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return 'missing';
        throw err;
      },
    );
    if (kind === 'dir') break;
    if (kind === 'other') throw Object.assign(new Error(`${d} is not a directory`), { code: 'ENOTDIR' });
    missing.push(d);
    if (dirname(d) === d) break;
  }
  missing.reverse();
  for (const d of missing) {
    try {
      await fileLayer().mkdir(d, mode);
    } catch (err) {
      // Someone else made it between our stat and mkdir: that is what we wanted.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return missing[0];
}

/**
 * Creates `dir` (and missing parents) so that it survives a crash: every
 * directory that gained an entry is fsynced, from the first one created's
 * parent down to `dir`'s own parent.
 */
export async function mkdirDurable(dir: string, mode = 0o700): Promise<void> {
  const made = await mkdirs(dir, mode);
  if (made === undefined) return;
  const chain: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    chain.push(d);
    if (d === dirname(made) || d === dirname(d)) break;
  }
  for (const d of chain.reverse()) await fsyncDir(d);
}
