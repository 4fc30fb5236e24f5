import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { StagingUnavailableError } from '../errors.js';
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
      await fs.mkdir(base, { recursive: true, mode: 0o700 });
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
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.chmod(dir, 0o700);
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
    const h = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await h.close();
    try {
      return await fn(path);
    } finally {
      await fs.rm(path, { force: true });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await fs.rm(this.dir, { recursive: true, force: true });
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
    await fs.rm(join(base, name), { recursive: true, force: true }).catch(() => undefined);
  }
}
