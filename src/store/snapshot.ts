import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { SnapshotBusyError } from '../errors.js';

/**
 * Reading one coherent snapshot of a store while a writer in another process
 * changes it.
 *
 * A reader verifies what it reads exactly as the writer's open does (STATE's
 * MAC, the keyring head, CATALOG, every manifest, WAL seals and rollback
 * checks). A failure can then mean two things: the files are damaged, or the
 * writer moved on while they were being read (a manifest renamed, WAL files
 * or segments it covered removed, a new WAL file created). The writer never
 * changes what a snapshot depends on without changing one of the files in
 * {@link storeFingerprint} first (a WAL file is announced in STATE before it
 * exists, a manifest in STATE before its rename, files are removed only
 * after the manifest that drops them is in place, CATALOG is announced in
 * STATE before it is replaced, key changes append to KEYRING). So: an error
 * while none of them changed is the files' own and is thrown as it is
 * (tampering stays detected and named); an error while one of them changed
 * is a race, and the read starts again, a bounded number of times.
 *
 * The retry only chooses which error is reported: nothing is ever accepted
 * without the full verification.
 */

/**
 * Attempts before a reader gives up with {@link SnapshotBusyError}. A writer
 * that flushes in well under a second (the native graph build) changes the
 * deciding files more often than a reader's full read takes, so ten attempts
 * were not enough beside a busy writer; forty, with the pause capped (below),
 * still give up after about seven seconds of pauses.
 */
export const SNAPSHOT_ATTEMPTS = 40;

/** The longest pause between two attempts. */
const MAX_PAUSE_MS = 200;

/** The files whose change marks a concurrent writer step (see above), relative to the store directory. */
const ROOT_FILES = ['STATE', 'KEYRING', 'CATALOG', 'STORE'];

/**
 * A digest of the files a snapshot is decided by, as they are now: STATE,
 * KEYRING, CATALOG, STORE and every collection's MANIFEST (a missing one
 * counts as missing). Reads only.
 */
export async function storeFingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  const add = async (rel: string): Promise<void> => {
    let bytes: Buffer | undefined;
    try {
      bytes = await fs.readFile(join(dir, rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    h.update(`${rel}\0${bytes === undefined ? '-' : createHash('sha256').update(bytes).digest('hex')}\0`);
  };
  for (const f of ROOT_FILES) await add(f);
  let ids: string[] = [];
  try {
    ids = (await fs.readdir(join(dir, 'collections'))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const id of ids) await add(join('collections', id, 'MANIFEST'));
  return h.digest('hex');
}

/**
 * Runs `read` (one attempt at a snapshot) until it succeeds; an error while
 * the store's fingerprint stayed the same is thrown as it is, an error while
 * it changed starts another attempt after a short pause. After `attempts`
 * racing attempts: a SnapshotBusyError with the last error as its cause.
 */
export async function readCoherent<T>(
  dir: string,
  read: () => Promise<T>,
  options: { attempts?: number; pauseMs?: number; onRace?: (attempt: number, err: unknown) => void } = {},
): Promise<T> {
  const attempts = options.attempts ?? SNAPSHOT_ATTEMPTS;
  const pause = options.pauseMs ?? 20;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const before = await storeFingerprint(dir);
    try {
      return await read();
    } catch (err) {
      last = err;
      const after = await storeFingerprint(dir);
      if (after === before) throw err;
      options.onRace?.(i + 1, err);
    }
    // A little longer each time, with jitter, so a reader does not fall into step with a writer's flushes.
    await new Promise((r) => setTimeout(r, Math.min(MAX_PAUSE_MS, pause * (i + 1)) * (0.5 + Math.random())));
  }
  throw new SnapshotBusyError(`no coherent snapshot of ${dir} after ${attempts} attempts: the writer changed the store during each`, {
    cause: last,
  });
}
