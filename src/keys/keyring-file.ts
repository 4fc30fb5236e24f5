import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { CorruptDataError, NotFoundError, UnsupportedVersionError } from '../errors.js';
import { writeFileAtomic } from '../storage/fsutil.js';
import { isId } from '../util/ids.js';

/**
 * The keyring: one small JSON file per store holding every collection's DEK
 * versions wrapped under the store's (or tenant's) KEKs, with states and
 * timestamps, and the KEK references (never key material). It is rewritten
 * atomically and carries a checksum so that accidental damage is named
 * rather than misread; tampering with a wrap is caught by the wrap's own
 * authentication.
 */

export const KEYRING_FORMAT = 'vectorseal-keyring';
export const KEYRING_VERSION = 1;

/** A KEK the store knows by name, and how to reach it (no secrets). */
export interface KekEntry {
  provider: string;
  keyId: string;
  /** The KEK version new wraps are made under, as last seen by a rotation. */
  currentVersion?: string;
  /** Provider settings that are not secret: endpoint, region, module path, token label. */
  config?: Record<string, string>;
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
  /** Incremented on every rewrite. */
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
}

export interface RotationPolicy {
  /** Rotate KEKs this many days after their last rotation. */
  kekRotationDays?: number;
  /** Re-key a collection (new DEK version) this many days after its active DEK was made. */
  dekRotationDays?: number;
  /** Re-key a collection once this many pages were sealed under its active DEK. */
  dekMaxPages?: number;
}

/**
 * File layout: `{"checksum":"<sha256 hex>",` followed by the rest of the
 * keyring's compact JSON. The checksum covers exactly the JSON text without
 * that first member, so it is checked on the bytes as read, before parsing,
 * and the keyring is serialised once per write.
 */
const CHECKSUM_PREFIX = /^\{"checksum":"([0-9a-f]{64})",/;

/** Serialises a keyring with its checksum. */
export function encodeKeyring(data: KeyringData): Buffer {
  const body = JSON.stringify(data);
  const sum = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`{"checksum":"${sum}",${body.slice(1)}\n`, 'utf8');
}

/** Parses and checks a keyring file's bytes. */
export function decodeKeyring(bytes: Uint8Array, file: string): KeyringData {
  const text = Buffer.from(bytes).toString('utf8').replace(/\n$/, '');
  const match = CHECKSUM_PREFIX.exec(text);
  if (!match) {
    throw new CorruptDataError(text.includes(KEYRING_FORMAT) ? 'keyring has no checksum' : 'not a vectorseal keyring', { file, reason: 'header' });
  }
  const body = `{${text.slice(match[0].length)}`;
  if (createHash('sha256').update(body).digest('hex') !== match[1]) {
    throw new CorruptDataError('keyring checksum does not match its contents', { file, reason: 'checksum' });
  }
  let data: KeyringData;
  try {
    data = JSON.parse(body) as KeyringData;
  } catch (err) {
    throw new CorruptDataError('keyring is not valid JSON', { file, reason: 'parse', cause: err });
  }
  if (typeof data !== 'object' || data === null || data.format !== KEYRING_FORMAT) {
    throw new CorruptDataError('not a vectorseal keyring', { file, reason: 'header' });
  }
  if (data.version !== KEYRING_VERSION) {
    throw new UnsupportedVersionError(`keyring format version ${String(data.version)} is not supported (this build reads ${KEYRING_VERSION}) (file ${file})`);
  }
  if (!isId(data.storeId) || !Number.isSafeInteger(data.generation) || typeof data.collections !== 'object' || typeof data.keks !== 'object') {
    throw new CorruptDataError('keyring is missing required fields', { file, reason: 'schema' });
  }
  return data;
}

export async function readKeyring(file: string): Promise<KeyringData> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`no keyring at ${file}`, { cause: err });
    }
    throw err;
  }
  return decodeKeyring(bytes, file);
}

/** Writes the keyring atomically with the next generation number. */
export async function writeKeyring(file: string, data: KeyringData): Promise<KeyringData> {
  const next: KeyringData = { ...data, generation: data.generation + 1, updatedAt: new Date().toISOString() };
  await writeFileAtomic(file, encodeKeyring(next));
  return next;
}
