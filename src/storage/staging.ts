import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { StagingUnavailableError } from '../errors.js';
import { mkdirs, removeFile, removeTree } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';
import { processAlive } from '../util/process-alive.js';

/** statfs magic numbers of RAM-backed file systems (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const DEFAULT_CANDIDATES = ['/dev/shm', '/run/shm'];
const PREFIX = 'vectorseal-';

/** Whether `dir` lives on tmpfs or ramfs (never written to a disk). */
export async function isRamBacked(dir: string): Promise<boolean> {
  try {
    const st = await fs.statfs(dir);
    return st.type === TMPFS_MAGIC || st.type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * A private staging directory for the few libraries that serialize only to a
 * path (hnswlib). It sits on a RAM-backed file system unless the user named a
 * directory explicitly; files are created 0600 inside a 0700 directory and
 * unlinked as soon as they have been read.
 */
export class Staging {
  private closed = false;

  private constructor(readonly dir: string) {}

  /**
   * Opens a private directory under `explicit`, or under the first RAM-backed
   * default location. Throws StagingUnavailableError when there is none.
   */
  static async open(explicit?: string): Promise<Staging> {
    let base: string | undefined;
    if (explicit !== undefined) {
      base = resolve(explicit);
      await mkdirs(base, 0o700);
    } else {
      for (const c of DEFAULT_CANDIDATES) {
        if (await isRamBacked(c)) {
          base = c;
          break;
        }
      }
      if (base === undefined) {
        throw new StagingUnavailableError(
          `no RAM-backed staging location (tried ${DEFAULT_CANDIDATES.join(', ')}); name one with the stagingDir option if you accept the risk`,
        );
      }
    }
    await removeDeadStagingDirs(base);
    const dir = join(base, `${PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    await fileLayer().mkdir(dir, 0o700);
    await fileLayer().chmod(dir, 0o700);
    return new Staging(dir);
  }

  /**
   * Runs `fn` with the path of a fresh 0600 file and removes the file
   * afterwards, whether `fn` succeeded or not.
   */
  async withFile<T>(fn: (path: string) => Promise<T> | T): Promise<T> {
    if (this.closed) throw new StagingUnavailableError('staging directory already closed');
    const path = join(this.dir, randomBytes(8).toString('hex'));
    // Pre-created so that the library's own open() reuses our mode.
    await (await fileLayer().open(path, 'create', 0o600)).close();
    try {
      return await fn(path);
    } finally {
      await removeFile(path);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await removeTree(this.dir);
  }
}

/** Removes staging directories left by processes that died (a crash mid-flush). */
async function removeDeadStagingDirs(base: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(base);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^vectorseal-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    await removeTree(join(base, name)).catch(() => undefined);
  }
}
