import { resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { checkKekConfigs, type KekConfig } from '../keys/kek-config.js';
import { upgradeKeyring, type KeyringUpgradeReport } from '../keys/keyring-upgrade.js';
import type { ProviderFactory } from '../keys/provider-registry.js';
import { StoreLock } from '../storage/lock.js';
import { openStore } from './store.js';

export interface UpgradeStoreOptions {
  dir: string;
  /** The owner's KEKs, as for openStore (the 0.1.0 keyring's own provider settings are not used). */
  keks?: Record<string, KekConfig>;
  /** Where the owner's local master keys are (default as for openStore: VECTORSEAL_MASTER_KEY, else the default key directory). */
  localKeyDir?: string;
  providers?: Record<string, ProviderFactory>;
}

/**
 * Converts a store written by vectorseal 0.1.0 so this version opens it:
 * its keyring becomes the authenticated keyring log, every wrap verified
 * under the owner's KEKs. Holds the store's lock meanwhile; data files are
 * not touched.
 */
export async function upgradeStore(options: UpgradeStoreOptions): Promise<KeyringUpgradeReport> {
  if (!options || typeof options.dir !== 'string' || options.dir.length === 0)
    throw new InvalidArgumentError('"dir" expected a directory path');
  const dir = resolve(options.dir);
  const keks = checkKekConfigs(options.keks);
  const lock = await StoreLock.acquire(dir);
  let report: KeyringUpgradeReport;
  try {
    report = await upgradeKeyring(dir, {
      keks,
      ...(options.localKeyDir === undefined ? {} : { localKeyDir: resolve(options.localKeyDir) }),
      ...(options.providers === undefined ? {} : { providers: options.providers }),
    });
  } finally {
    await lock.release();
  }
  // A 0.1.0 store has no authenticated store state: build it from the files as they are now,
  // under the keyring just verified (an open with initializeState, which also checks every file).
  const store = await openStore({
    dir,
    keks,
    initializeState: true,
    maintainOnOpen: false,
    ...(options.localKeyDir === undefined ? {} : { keys: { provider: 'local' as const, keyDir: resolve(options.localKeyDir) } }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
  });
  await store.close();
  return report;
}
