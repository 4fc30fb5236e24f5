import { join } from 'node:path';
import { afterEach } from 'vitest';
import { openStore, type OpenStoreOptions, type Store } from '../../src/store/index.js';
import { removeAfterTest, tempDir } from './tmp.js';

/**
 * The one way tests make a store's directories and open it: every folder
 * (store, lifecycle, backup, cli, kms, ...) uses these, so cleanup and the
 * local-key default are the same everywhere.
 */

export interface TestStoreDirs {
  root: string;
  dir: string;
  keyDir: string;
  stagingDir: string;
}

/**
 * A temp root holding a data dir and a key dir (outside the data dir), and a
 * staging dir in RAM (/dev/shm). Made inside a test, all of it is removed when
 * that test finishes; made in a describe block, after each of its tests.
 */
export function storeDirs(prefix = 'vs-store-'): TestStoreDirs {
  const root = tempDir(prefix);
  const stagingDir = join('/dev/shm', `${prefix}${process.pid}-${Math.random().toString(36).slice(2)}`);
  removeAfterTest(stagingDir);
  return { root, dir: join(root, 'data'), keyDir: join(root, 'keys'), stagingDir };
}

const open: Store[] = [];
// afterEach hooks run before onTestFinished ones: the stores close before their directories go.
afterEach(async () => {
  for (const s of open.splice(0)) await s.close({ flush: false }).catch(() => undefined);
});

/** Opens (creating) a store in `d` with a local KEK in d.keyDir; closed after the test if the test did not. */
export async function openTestStore(d: TestStoreDirs, extra: Partial<OpenStoreOptions> = {}): Promise<Store> {
  const s = await openStore({ dir: d.dir, create: true, keys: { provider: 'local', keyDir: d.keyDir }, ...extra });
  open.push(s);
  return s;
}
