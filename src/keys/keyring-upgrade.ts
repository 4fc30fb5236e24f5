import { timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError, InvalidArgumentError } from '../errors.js';
import { writeFileAtomic } from '../util/durable.js';
import { KEYRING_FORMAT, KEYRING_VERSION, type CollectionKeys, type KekEntry, type KeyringData } from './keyring-file.js';
import { KEYRING_FILE, encodeCheckpoint } from './keyring-log.js';
import { createMacKey, toWrapped } from './keyring-mac-key.js';
import { decodeKeyringV1, isKeyringV1 } from './keyring-v1.js';
import { ProviderRegistry, type ProviderRegistryOptions } from './provider-registry.js';

export interface KeyringUpgradeReport {
  storeId: string;
  /** DEK wraps unwrapped and checked under the owner's KEKs. */
  verifiedWraps: number;
  collections: number;
  /** The KEKs by name, with the key each is bound to. */
  keks: Record<string, { provider: string; keyId: string }>;
}

/**
 * Converts a 0.1.0 keyring (one checksummed JSON file) into the MAC-chained
 * keyring log, using only the owner's KEK configuration: the provider
 * settings the old file recorded (key directories, endpoints, module paths)
 * are dropped unread. Every wrap is unwrapped under its KEK first, and the
 * wraps of one DEK must open to the same key, so nothing an attacker edited
 * in the old file is carried over unchecked. Replaces the file atomically.
 */
export async function upgradeKeyring(dir: string, options: ProviderRegistryOptions): Promise<KeyringUpgradeReport> {
  const file = join(dir, KEYRING_FILE);
  const bytes = await fs.readFile(file);
  if (!isKeyringV1(bytes)) throw new InvalidArgumentError(`the keyring in ${dir} is not a 0.1.0 keyring; nothing to upgrade`);
  const old = decodeKeyringV1(bytes, file);
  const registry = new ProviderRegistry(options);
  try {
    const keks: Record<string, KekEntry> = {};
    for (const [name, e] of Object.entries(old.keks)) {
      const { config: _dropped, ...entry } = e;
      keks[name] = entry;
    }
    let verifiedWraps = 0;
    const check = async (cid: string, col: CollectionKeys) => {
      for (const d of col.deks) {
        let first: Uint8Array | undefined;
        try {
          for (const w of d.wraps) {
            const entry = keks[w.kek];
            if (!entry || entry.provider !== w.provider || entry.keyId !== w.keyId) {
              throw new CorruptDataError(
                `collection ${cid} DEK version ${d.version} has a wrap under KEK "${w.kek}" that the keyring does not bind to that key`,
                { file, reason: 'schema' },
              );
            }
            const dek = await (await registry.provider(w.kek, entry)).unwrap(toWrapped(w), {
              storeId: old.storeId,
              collectionId: cid,
              dekVersion: d.version,
            });
            if (first === undefined) first = dek;
            else {
              const same = timingSafeEqual(Buffer.from(first), Buffer.from(dek));
              dek.fill(0);
              if (!same)
                throw new CorruptDataError(`the wraps of collection ${cid} DEK version ${d.version} open to different keys`, {
                  file,
                  reason: 'wrapped-dek',
                });
            }
            verifiedWraps += 1;
          }
        } finally {
          first?.fill(0);
        }
      }
    };
    for (const [cid, col] of Object.entries(old.collections)) await check(cid, col);
    for (const [cid, col] of Object.entries(old.system ?? {})) await check(cid, col);
    const state: KeyringData = {
      ...old,
      format: KEYRING_FORMAT,
      version: KEYRING_VERSION,
      keks,
      system: old.system ?? {},
      macKey: [],
      updatedAt: new Date().toISOString(),
    };
    const mac = await createMacKey(old.storeId, old.defaultKeks, (n) => registry.provider(n, keks[n] as KekEntry));
    try {
      state.macKey = mac.wraps;
      await writeFileAtomic(file, encodeCheckpoint(state, mac.key, old.generation + 1).bytes);
    } finally {
      mac.key.fill(0);
    }
    return {
      storeId: old.storeId,
      verifiedWraps,
      collections: Object.keys(old.collections).length,
      keks: Object.fromEntries(Object.entries(keks).map(([n, k]) => [n, { provider: k.provider, keyId: k.keyId }])),
    };
  } finally {
    await registry.close();
  }
}
