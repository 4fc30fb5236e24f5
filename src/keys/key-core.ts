import type { DekContext } from './context.js';
import type { DekAccess } from './dek-access.js';
import type { KeyAuditor } from './key-audit.js';
import type { Keyring } from './keyring.js';
import type { CollectionKeys, KeyringData } from './keyring-file.js';
import type { KekProvider } from './provider.js';
import type { ProviderRegistry } from './provider-registry.js';

/**
 * What the key-management parts (rotation, the KEK set, tenants, shredding)
 * share: the keyring, the caller's providers, DEK access, the audit sink,
 * and the one-at-a-time queue keyring changes run in.
 */
export interface KeyCore {
  readonly ring: Keyring;
  readonly registry: ProviderRegistry;
  readonly deks: DekAccess;
  readonly audit: KeyAuditor;
  /** The provider of a KEK the keyring names, made from the caller's configuration. */
  provider(kek: string): Promise<KekProvider>;
  /** Keyring changes run one at a time so that no update is lost. */
  serialized<T>(fn: () => Promise<T>): Promise<T>;
  context(collectionId: string, dekVersion: number): DekContext;
}

/** Every key set of the keyring: collections, then the store's own keys, with the op kind that replaces each. */
export function keySets(data: Readonly<KeyringData>): [string, CollectionKeys, 'c' | 's'][] {
  return [
    ...Object.entries(data.collections).map(([id, c]) => [id, c, 'c'] as [string, CollectionKeys, 'c']),
    ...Object.entries(data.system ?? {}).map(([id, c]) => [id, c, 's'] as [string, CollectionKeys, 's']),
  ];
}

/** A copy of a key set that can be changed without touching the committed state. */
export function cloneKeys(c: CollectionKeys): CollectionKeys {
  return { ...c, keks: [...c.keks], deks: c.deks.map((d) => ({ ...d, wraps: [...d.wraps] })) };
}
