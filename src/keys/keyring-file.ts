/**
 * The keyring's state: every collection's DEK versions wrapped under the
 * store's (or a tenant's) KEKs, with states and timestamps, and the KEKs by
 * name with the identity they are bound to (provider and key id). It holds no
 * key material and no way of reaching a KEK: endpoints, key directories and
 * modules are the caller's configuration (kek-config.ts). On disk it is the
 * MAC-chained log of keyring-log.ts.
 */

export const KEYRING_FORMAT = 'vectorseal-keyring';
export const KEYRING_VERSION = 2;

/**
 * A KEK the store knows by name, bound to one key: the caller's configuration
 * of that name must name the same provider and key id, and every wrap made
 * under it proves the key itself (a key check value, or the KMS's own
 * authentication of the ciphertext).
 */
export interface KekEntry {
  provider: string;
  keyId: string;
  /** The KEK version new wraps are made under, as last seen by a rotation. */
  currentVersion?: string;
  createdAt: string;
  /** When the last rotation of this KEK completed. */
  rotatedAt?: string;
  /** The tenant that owns this KEK, when it is a tenant's own. */
  tenant?: string;
  /** 'destroyed' once crypto-shredding removed (or scheduled the removal of) the key in its provider. */
  state?: 'enabled' | 'destroyed' | 'pending-deletion';
}

export type DekState = 'active' | 'retired' | 'destroyed';

export interface StoredWrap {
  /** Name of the KEK entry in `keks`. */
  kek: string;
  provider: string;
  keyId: string;
  kekVersion?: string;
  /** base64 */
  blob: string;
}

export interface DekRecord {
  version: number;
  state: DekState;
  createdAt: string;
  retiredAt?: string;
  destroyedAt?: string;
  /** Empty once destroyed. */
  wraps: StoredWrap[];
}

export interface CollectionKeys {
  name: string;
  tenant?: string;
  /** KEK names every DEK of this collection is wrapped under, in unwrap order. */
  keks: string[];
  /** The DEK version new segments and WAL files use. */
  activeVersion: number;
  /** DEKs below this version are refused even if they unwrap. */
  minDecryptVersion?: number;
  /** A disabled collection's keys are refused until it is enabled again. */
  disabled?: boolean;
  /** Pages sealed under the active DEK version, for page-write rotation limits. */
  pagesWritten?: number;
  deks: DekRecord[];
}

export type TenantState = 'enabled' | 'disabled' | 'pending-deletion' | 'deleted';

export interface TenantEntry {
  keks: string[];
  state: TenantState;
  createdAt: string;
  /** The state to return to when a scheduled deletion is cancelled. */
  stateBeforeDeletion?: 'enabled' | 'disabled';
  deleteAfter?: string;
  deletedAt?: string;
  policy?: RotationPolicy;
}

export interface RotationState {
  kek: string;
  fromVersion?: string;
  startedAt: string;
}

export interface KeyringData {
  format: typeof KEYRING_FORMAT;
  version: typeof KEYRING_VERSION;
  storeId: string;
  /** The sequence number of the last keyring record: grows with every change. */
  generation: number;
  updatedAt: string;
  /** The KEK names used for collections without a tenant of their own. */
  defaultKeks: string[];
  keks: Record<string, KekEntry>;
  tenants: Record<string, TenantEntry>;
  collections: Record<string, CollectionKeys>;
  /** Set while a KEK rotation is under way, so that it can be resumed. */
  rotation?: RotationState;
  /** Rotation policy applied by maintenance, for the store (tenants may override). */
  policy?: RotationPolicy;
  /** Keys the store itself uses (the audit trail's key), wrapped like DEKs. */
  system?: Record<string, CollectionKeys>;
  /** The keyring MAC key wrapped under every default KEK (context: store, collection `vectorseal-keyring`, version 1). */
  macKey: StoredWrap[];
}

export interface RotationPolicy {
  /** Rotate KEKs this many days after their last rotation. */
  kekRotationDays?: number;
  /** Re-key a collection (new DEK version) this many days after its active DEK was made. */
  dekRotationDays?: number;
  /** Re-key a collection once this many pages were sealed under its active DEK. */
  dekMaxPages?: number;
}
