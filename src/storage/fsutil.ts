import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StorageFullError } from '../errors.js';
import { crashPoint } from '../util/crash.js';

/** A full file system as StorageFullError (naming the file, keeping the platform error as cause); any other error as it is. */
export function storageError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  return new StorageFullError(`no space left on the device writing ${path}`, { cause: err });
}

/** Fsyncs a directory so that a rename or a new entry in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `data` atomically: write a temp file beside it, fsync
 * it, rename it over the target, fsync the directory. After a crash the path
 * holds either the old or the new contents, never a mix.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw storageError(err, path);
  }
  await handle.close();
  crashPoint('atomic:temp-written');
  await fs.rename(tmp, path);
  crashPoint('atomic:renamed');
  await fsyncDir(dir);
}

/**
 * Creates `path` with `data` atomically, failing with EEXIST if it exists:
 * the contents are written and fsynced under a temp name, then hard-linked to
 * the final name (which never overwrites), so the file appears whole or not
 * at all.
 */
export async function createFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFileDurable(tmp, data, mode);
  crashPoint('atomic:create-temp-written');
  try {
    await fs.link(tmp, path);
    crashPoint('atomic:create-linked');
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(dir);
}

/**
 * Creates `path` with `data`, whole or not at all, failing with EEXIST if it
 * exists, without making it durable: for files that a crash may lose (a
 * lock, whose holder dies with the crash). Written under a temp name and
 * hard-linked, as {@link createFileAtomic}, but no fsync.
 */
export async function createFileExclusive(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw storageError(err, path);
  }
  await handle.close();
  try {
    await fs.link(tmp, path);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Writes a new file that must not exist yet, fsyncs it and its directory. */
export async function writeFileDurable(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    throw storageError(err, path);
  } finally {
    await handle.close();
  }
  await fsyncDir(dirname(path));
}

/** Removes temp files left by an interrupted atomic write. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names.filter((n) => n.startsWith('.') && n.endsWith('.tmp')).map((n) => fs.rm(join(dir, n), { force: true })),
  );
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
 * Creates `dir` (and missing parents) so that it survives a crash: every
 * directory that gained an entry is fsynced, from the first one created's
 * parent down to `dir`'s own parent.
 */
export async function mkdirDurable(dir: string, mode = 0o700): Promise<void> {
  const made = await fs.mkdir(dir, { recursive: true, mode });
  if (made === undefined) return;
  const chain: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    chain.push(d);
    if (d === dirname(made) || d === dirname(d)) break;
  }
  for (const d of chain.reverse()) await fsyncDir(d);
}
