import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StoreLockedError } from '../errors.js';
import { createFileExclusive, exists, removeFile } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';
import { processAlive } from '../util/process-alive.js';

export const LOCK_FILE = 'LOCK';

/** What a LOCK file holds: enough to tell a live holder from a dead one. */
export interface LockInfo {
  pid: number;
  hostname: string;
  startedAt: string;
  /** Random token so that a holder only ever removes its own lock. */
  token: string;
}

function parse(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as LockInfo;
    return typeof v.pid === 'number' && typeof v.hostname === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The process holding a store's lock, when it is alive on this host (a
 * store open right now); undefined for no lock or a stale one. Reads only.
 */
export async function liveLockHolder(dir: string): Promise<LockInfo | undefined> {
  const holder = parse(await fs.readFile(join(dir, LOCK_FILE), 'utf8').catch(() => ''));
  if (!holder) return undefined;
  if (holder.hostname !== hostname()) return holder;
  return processAlive(holder.pid) ? holder : undefined;
}

/**
 * The single-writer lock of a store directory. The LOCK file appears whole or
 * not at all (hard link of a temp file), so a reader never sees half a lock.
 * It is not fsynced: a crash ends its holder, and a lock that a crash left
 * empty or half-written is unreadable, which is taken over like a dead
 * one. A lock left by a dead process on this host is taken over; a live
 * holder, or one on another host (whose liveness cannot be checked), wins.
 */
export class StoreLock {
  private released = false;
  private readonly onExit = (): void => this.releaseSync();

  private constructor(
    readonly path: string,
    readonly info: LockInfo,
  ) {
    process.once('exit', this.onExit);
  }

  static async acquire(dir: string): Promise<StoreLock> {
    const path = join(dir, LOCK_FILE);
    const info: LockInfo = {
      pid: process.pid,
      hostname: hostname(),
      startedAt: new Date().toISOString(),
      token: Math.random().toString(36).slice(2) + Date.now().toString(36),
    };
    const body = Buffer.from(JSON.stringify(info));
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await createFileExclusive(path, body, 0o600);
        return new StoreLock(path, info);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // ENOENT: another process opening the store at the same moment removed our temp file
        // (it clears stale temps once it holds the lock); whoever holds LOCK now decides below.
        if (code !== 'EEXIST' && code !== 'ENOENT') throw err;
        if (code === 'ENOENT' && !(await exists(dir))) throw err;
      }
      const holder = parse(await fs.readFile(path, 'utf8').catch(() => ''));
      if (holder && holder.hostname === info.hostname && holder.pid === process.pid) {
        // Our own lock: this process already has the store open (its LOCK is never taken over).
        throw new StoreLockedError(
          `store ${dir} is already open in this process: use that Store, or close it before opening the directory again`,
        );
      }
      if (holder && (holder.hostname !== info.hostname || processAlive(holder.pid))) {
        throw new StoreLockedError(`store ${dir} is locked by process ${holder.pid} on ${holder.hostname} (since ${holder.startedAt})`);
      }
      // Stale (dead holder) or unreadable: remove only if it is still the same lock.
      const again = await fs.readFile(path, 'utf8').catch(() => undefined);
      if (again !== undefined && parse(again)?.token === holder?.token) await removeFile(path);
    }
    throw new StoreLockedError(`store ${dir} is locked (the lock changed hands while taking it over)`);
  }

  /** Removes the lock if it is still ours. */
  async release(): Promise<void> {
    this.releaseSync();
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener('exit', this.onExit);
    try {
      if (parse(readFileSync(this.path, 'utf8'))?.token === this.info.token) fileLayer().unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}
