import { resolve } from 'node:path';
import { NotFoundError } from '../errors.js';
import { KeyManager } from '../keys/key-manager.js';

/**
 * The store's audit key, for `vectorseal audit verify`: read from the
 * keyring and unwrapped by its KEK, without taking the store's write lock and
 * without creating a key where none exists. The caller zeroes the bytes.
 */
export async function resolveStoreAuditKey(opts: { dir: string; keyDir?: string }): Promise<Uint8Array> {
  const dir = resolve(opts.dir);
  const keys = await KeyManager.open({ dir, ...(opts.keyDir === undefined ? {} : { localKeyDir: resolve(opts.keyDir) }) });
  try {
    if (!keys.keyring.system?.['vectorseal-audit']) throw new NotFoundError(`the store in ${dir} has no audit key (it was never opened by a version that writes the audit trail)`);
    const lease = await keys.systemKey('audit');
    try {
      return Uint8Array.from(lease.key);
    } finally {
      lease.release();
    }
  } finally {
    await keys.close();
  }
}
