import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../audit/canonical-json.js';
import { hkdfExpandSha512 } from '../crypto/hkdf.js';
import { CorruptDataError, UnsupportedVersionError } from '../errors.js';
import { isId } from '../util/ids.js';

/**
 * The backup manifest (`snapshots/<n>/BACKUP`): plain JSON listing every file
 * of one snapshot (where it goes in a restored store, where it is stored in
 * the backup, its length and SHA-256), MACed with HMAC-SHA-256 under a key
 * derived from the store's `backup` system key, which is wrapped under the
 * store's KEKs in the snapshot's own keyring.
 *
 * It holds no secret and nothing the store directory does not already show:
 * random ids, file names, lengths, and hashes of files that are themselves
 * ciphertext. That is what lets `backup verify` check structure and hashes
 * without any key; the MAC (which needs a KEK) proves the list is the one the
 * store wrote.
 */

export const BACKUP_FORMAT = 'vectorseal-backup';
export const BACKUP_VERSION = 1;
/** Name of the manifest file inside a snapshot directory. */
export const BACKUP_FILE = 'BACKUP';
/** The store system key the MAC key is derived from (`systemKey('backup')`). */
export const BACKUP_KEY_NAME = 'backup';
/** Its id among the keyring's system keys. */
export const BACKUP_KEY_ID = `vectorseal-${BACKUP_KEY_NAME}`;
const MAC_LABEL = 'vectorseal/backup-mac/v1';

export const OBJECTS_DIR = 'objects';
export const SNAPSHOTS_DIR = 'snapshots';

/** One file of a snapshot. */
export interface BackupFileEntry {
  /** Where the file goes in a restored store, relative to the store directory. */
  path: string;
  /** Where it is kept, relative to the backup directory. */
  stored: string;
  length: number;
  /** SHA-256 (hex) of the file's bytes. */
  sha256: string;
}

/** The cut taken of one collection. */
export interface BackupCollectionEntry {
  id: string;
  /** Generation of the manifest in the snapshot. */
  generation: number;
  /** WAL files firstWalSeq..lastWalSeq are in the snapshot (none when last < first). */
  firstWalSeq: number;
  lastWalSeq: number;
}

export interface BackupMac {
  alg: 'HMAC-SHA-256';
  /** The system key (and its version) the MAC key is derived from. */
  key: string;
  keyVersion: number;
  value: string;
}

export interface BackupBody {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  storeId: string;
  snapshot: number;
  createdAt: string;
  collections: BackupCollectionEntry[];
  files: BackupFileEntry[];
}

export interface BackupManifest extends BackupBody {
  mac: BackupMac;
}

/** Directory of snapshot `n`, relative to the backup directory. */
export function snapshotDir(n: number): string {
  return `${SNAPSHOTS_DIR}/${String(n).padStart(8, '0')}`;
}

/** Where a content-addressed file is kept, relative to the backup directory. */
export function objectPath(sha256: string): string {
  return `${OBJECTS_DIR}/${sha256.slice(0, 2)}/${sha256}`;
}

const ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** Immutable files (segments, WAL files) are content-addressed and shared between snapshots. */
const SHARED_PATH = new RegExp(`^collections/${ID}/(seg/\\d{12}\\.[a-z]+\\.vseg|wal/\\d{12}\\.wal)$`);
/** Small mutable files are kept per snapshot. */
const OWN_PATH = new RegExp(`^(STORE|CATALOG|KEYRING|collections/${ID}/MANIFEST)$`);
const SHA256 = /^[0-9a-f]{64}$/;

/** Whether a store file is kept content-addressed (shared by snapshots) rather than in the snapshot's directory. */
export function isSharedPath(path: string): boolean {
  return SHARED_PATH.test(path);
}

/** The `stored` location a well-formed entry must have. */
export function expectedStored(snapshot: number, path: string, sha256: string): string {
  return isSharedPath(path) ? objectPath(sha256) : `${snapshotDir(snapshot)}/${path}`;
}

/** The collection id a store path belongs to, if any. */
export function collectionOfPath(path: string): string | undefined {
  const m = /^collections\/([^/]+)\//.exec(path);
  return m ? m[1] : undefined;
}

function macKey(systemKey: Uint8Array, storeId: string): Buffer {
  return hkdfExpandSha512(systemKey, Buffer.from(`${MAC_LABEL}\0${storeId}`, 'utf8'), 32);
}

/** The MAC of a manifest body (canonical JSON, so key order and spacing do not matter). */
export function computeMac(body: BackupBody, systemKey: Uint8Array): string {
  const key = macKey(systemKey, body.storeId);
  try {
    return createHmac('sha256', key)
      .update(canonicalJson(bodyOf(body)))
      .digest('hex');
  } finally {
    key.fill(0);
  }
}

/** Throws CorruptDataError (reason 'mac') unless the manifest's MAC is right. */
export function checkMac(manifest: BackupManifest, systemKey: Uint8Array, file: string): void {
  const want = Buffer.from(computeMac(manifest, systemKey), 'hex');
  const got = Buffer.from(manifest.mac.value, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw new CorruptDataError('backup manifest MAC does not match: the manifest was changed or made without the store key', {
      file,
      reason: 'mac',
    });
  }
}

/** The MACed part of a manifest. */
export function bodyOf(m: BackupBody): BackupBody {
  return {
    format: m.format,
    version: m.version,
    storeId: m.storeId,
    snapshot: m.snapshot,
    createdAt: m.createdAt,
    collections: m.collections.map((c) => ({ id: c.id, generation: c.generation, firstWalSeq: c.firstWalSeq, lastWalSeq: c.lastWalSeq })),
    files: m.files.map((f) => ({ path: f.path, stored: f.stored, length: f.length, sha256: f.sha256 })),
  };
}

export function encodeManifest(m: BackupManifest): Buffer {
  return Buffer.from(`${JSON.stringify({ ...bodyOf(m), mac: m.mac }, null, 1)}\n`, 'utf8');
}

/**
 * Parses and checks the structure of a backup manifest: every field present
 * and well-formed, every path one a store has, every stored location the one
 * its path and hash imply, no path twice, every collection's files present.
 * Does not look at the files themselves.
 */
export function decodeManifest(bytes: Uint8Array, file: string, snapshot: number): BackupManifest {
  let m: BackupManifest;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8')) as BackupManifest;
  } catch (err) {
    throw new CorruptDataError('backup manifest is not valid JSON', { file, reason: 'decode', cause: err });
  }
  const bad = (why: string): never => {
    throw new CorruptDataError(`backup manifest is malformed: ${why}`, { file, reason: 'schema' });
  };
  if (typeof m !== 'object' || m === null || m.format !== BACKUP_FORMAT) bad('not a vectorseal backup manifest');
  if (m.version !== BACKUP_VERSION) {
    throw new UnsupportedVersionError(
      `backup manifest version ${String(m.version)} is not supported (this build reads ${BACKUP_VERSION}) (file ${file})`,
    );
  }
  if (!isId(m.storeId)) bad('storeId');
  if (m.snapshot !== snapshot) bad(`it says snapshot ${String(m.snapshot)} but lies in the directory of snapshot ${snapshot}`);
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) bad('createdAt');
  if (!Array.isArray(m.collections) || !Array.isArray(m.files)) bad('collections and files must be lists');
  const mac = m.mac;
  if (
    typeof mac !== 'object' ||
    mac === null ||
    mac.alg !== 'HMAC-SHA-256' ||
    mac.key !== BACKUP_KEY_ID ||
    !Number.isSafeInteger(mac.keyVersion) ||
    typeof mac.value !== 'string' ||
    !SHA256.test(mac.value)
  ) {
    bad('mac');
  }
  const ids = new Set<string>();
  for (const c of m.collections) {
    if (typeof c !== 'object' || c === null || !isId(c.id) || ids.has(c.id)) bad('collection id');
    for (const n of [c.generation, c.firstWalSeq, c.lastWalSeq])
      if (!Number.isSafeInteger(n) || n < 0) bad(`numbers of collection ${c.id}`);
    ids.add(c.id);
  }
  const paths = new Set<string>();
  for (const f of m.files) {
    if (typeof f !== 'object' || f === null || typeof f.path !== 'string' || typeof f.stored !== 'string') bad('file entry');
    if (!SHARED_PATH.test(f.path) && !OWN_PATH.test(f.path)) bad(`unexpected path "${f.path.slice(0, 200)}"`);
    if (paths.has(f.path)) bad(`path ${f.path} is listed twice`);
    paths.add(f.path);
    if (!Number.isSafeInteger(f.length) || f.length < 0 || typeof f.sha256 !== 'string' || !SHA256.test(f.sha256))
      bad(`length or hash of ${f.path}`);
    if (f.stored !== expectedStored(snapshot, f.path, f.sha256)) bad(`${f.path} is stored at ${f.stored.slice(0, 200)}`);
    const cid = collectionOfPath(f.path);
    if (cid !== undefined && !ids.has(cid)) bad(`${f.path} belongs to no collection of the snapshot`);
  }
  for (const p of ['STORE', 'CATALOG', 'KEYRING']) if (!paths.has(p)) bad(`${p} is not listed`);
  for (const c of m.collections) {
    if (!paths.has(`collections/${c.id}/MANIFEST`)) bad(`the manifest of collection ${c.id} is not listed`);
    for (let s = c.firstWalSeq; s <= c.lastWalSeq; s++) {
      if (!paths.has(`collections/${c.id}/wal/${String(s).padStart(12, '0')}.wal`))
        bad(`WAL file ${s} of collection ${c.id} is not listed`);
    }
  }
  return m;
}
