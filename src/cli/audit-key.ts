import { join, resolve } from 'node:path';
import type { AuditHead } from '../audit/index.js';
import { NotFoundError } from '../errors.js';
import { KeyManager } from '../keys/key-manager.js';
import { readStoreStateForAudit } from '../store/state.js';
import { cliKekConfig } from './context.js';

/**
 * The store's audit key, for `vectorseal audit verify`, with the trail head
 * the store's authenticated state records: read from the keyring (verified,
 * read-only) and unwrapped by a KEK of the store's config file, without
 * taking the store's write lock and without creating a key where none
 * exists. The caller zeroes the bytes.
 */
export async function resolveStoreAudit(opts: {
  dir: string;
  keyDir?: string;
  config?: string;
}): Promise<{ macKey: Uint8Array; recordedHead?: AuditHead }> {
  const dir = resolve(opts.dir);
  const config = await cliKekConfig({ dir, ...(opts.config === undefined ? {} : { config: opts.config }) });
  const keys = await KeyManager.open({
    dir,
    file: join(dir, 'KEYRING'),
    ...(config === undefined ? {} : { keks: config.keks }),
    ...(opts.keyDir === undefined ? {} : { localKeyDir: resolve(opts.keyDir) }),
  });
  try {
    if (!keys.keyring.system?.['vectorseal-audit'])
      throw new NotFoundError(`the store in ${dir} has no audit key (it was never opened by a version that writes the audit trail)`);
    const state = await readStoreStateForAudit({ dir, keys });
    const lease = await keys.leaseDek('vectorseal-audit', 1);
    try {
      return { macKey: Uint8Array.from(lease.key), ...(state.audit === undefined ? {} : { recordedHead: state.audit }) };
    } finally {
      lease.release();
    }
  } finally {
    await keys.close();
  }
}

/** The store's audit key alone (see {@link resolveStoreAudit}). The caller zeroes the bytes. */
export async function resolveStoreAuditKey(opts: { dir: string; keyDir?: string; config?: string }): Promise<Uint8Array> {
  return (await resolveStoreAudit(opts)).macKey;
}
