import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hkdfExpandSha512 } from '../crypto/hkdf.js';
import { CorruptDataError, UnsupportedVersionError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import { writeFileAtomic } from '../util/durable.js';

/**
 * The STATE file: what the store believes about its own files, authenticated
 * by an HMAC-SHA-256 under a key derived from the store's 'state' system key.
 * A checksum would not do: the attacker can write the data directory, so
 * only a keyed MAC tells the store's own record from an edited one.
 *
 * Layout (text, two lines): the body as JSON, then the hex MAC over exactly
 * the body line's bytes, so no canonical encoding is needed to verify it.
 */

export const STATE_FILE = 'STATE';
export const STATE_FORMAT = 'vectorseal-state';
export const STATE_VERSION = 1;
const MAC_LABEL = Buffer.from('vectorseal/state/v1 mac', 'latin1');
const ANCHOR_FORMAT = 'vectorseal-anchor';

/** A WAL file as it was when it was sealed (superseded, or the newest at a clean close). */
export interface WalSeal {
  seq: number;
  records: number;
  /** SHA-256 (hex) of the whole file. */
  sha256: string;
}

/** A manifest by generation and SHA-256 (hex) of its file. */
export interface ManifestRef {
  generation: number;
  sha256: string;
}

/** What the state records of one collection. */
export interface CollectionState {
  /** The committed manifest (absent until the first one is committed). */
  manifest?: ManifestRef;
  /** A manifest about to replace it: written to the state before the rename, so either may be on disk after a crash. */
  pending?: ManifestRef;
  /** Superseded WAL files, each sealed with its record count and hash; those below the manifest's firstWalSeq are garbage. */
  sealed: WalSeal[];
  /** Highest WAL sequence number that may exist: a file is named here before it is created. 0: none yet. */
  liveSeq: number;
  /** After a clean close: the newest WAL file, whole. */
  closed?: WalSeal;
}

/** The audit trail's head as the state records it. */
export interface StateAuditHead {
  trail: string;
  seq: number;
  mac: string;
}

export interface StateBody {
  format: typeof STATE_FORMAT;
  version: number;
  storeId: string;
  /** Incremented by every write: what a freshness anchor compares. */
  generation: number;
  /** True when written by a clean close (every WAL file then covered whole). */
  clean: boolean;
  /** SHA-256 (hex) of the STORE file. */
  store: string;
  /** SHA-256 (hex) of the CATALOG file; null while none was written. */
  catalog: string | null;
  /** A CATALOG about to replace it (see {@link CollectionState.pending}). */
  pendingCatalog?: string;
  collections: Record<string, CollectionState>;
  audit?: StateAuditHead;
  /**
   * The keyring log's head when this state was written (sequence number and
   * hex MAC): a keyring cut back to an earlier authentic prefix is older
   * than this, which its own MAC chain cannot tell.
   */
  keyring?: { seq: number; mac: string };
}

export interface StateFileContents {
  body: StateBody;
  /** Hex MAC of the body (what a freshness anchor keeps). */
  mac: string;
}

/** The MAC key for STATE (and its freshness anchor), from the 32-byte system key. The caller zeroes it. */
export function deriveStateMacKey(systemKey: Uint8Array): Buffer {
  return hkdfExpandSha512(systemKey, MAC_LABEL, 32);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function macOf(key: Uint8Array, bytes: Uint8Array): string {
  return createHmac('sha256', key).update(bytes).digest('hex');
}

function macEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && x.length === y.length && timingSafeEqual(x, y);
}

/** The bytes of a STATE file for `body`, and its MAC. */
export function encodeState(body: StateBody, key: Uint8Array): { bytes: Buffer; mac: string } {
  const line = Buffer.from(JSON.stringify(body), 'utf8');
  const mac = macOf(key, line);
  return { bytes: Buffer.concat([line, Buffer.from(`\n${mac}\n`, 'latin1')]), mac };
}

/** Writes STATE atomically (temp, fsync, rename, fsync dir). */
export async function writeStateFile(file: string, body: StateBody, key: Uint8Array): Promise<string> {
  const { bytes, mac } = encodeState(body, key);
  crashPoint('state:before-write');
  await writeFileAtomic(file, bytes, 0o600);
  crashPoint('state:written');
  return mac;
}

/**
 * Reads and authenticates STATE. Missing, unparsable or not authentic: a
 * CorruptDataError naming the file; the body is believed only after the MAC.
 */
export async function readStateFile(file: string, key: Uint8Array, storeId: string): Promise<StateFileContents> {
  let text: Buffer;
  try {
    text = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CorruptDataError('the store state is missing (a store made by vectorseal 0.1.0 is converted with `vectorseal upgrade`)', {
        file,
        reason: 'missing',
        cause: err,
      });
    }
    throw err;
  }
  return parseStateFile(text, file, key, storeId);
}

/**
 * Authenticates and parses the bytes of a STATE file (read by the caller:
 * a reader takes them before it opens the keyring, whose head they pin).
 */
export function parseStateFile(text: Buffer, file: string, key: Uint8Array, storeId: string): StateFileContents {
  // Exactly "<body>\n<64 hex>\n": any other byte, even a cut newline, is damage.
  const nl = text.indexOf(0x0a);
  const tail = nl < 0 ? '' : text.subarray(nl + 1).toString('latin1');
  const macText = tail.slice(0, 64);
  if (nl < 0 || tail.length !== 65 || !tail.endsWith('\n') || !/^[0-9a-f]{64}$/.test(macText)) {
    throw new CorruptDataError('STATE is not a store state file (cut or extended)', { file, reason: 'header' });
  }
  const line = text.subarray(0, nl);
  if (!macEqual(macOf(key, line), macText))
    throw new CorruptDataError('STATE does not authenticate: it was changed, or belongs to another store', { file, reason: 'auth' });
  let body: StateBody;
  try {
    body = JSON.parse(line.toString('utf8')) as StateBody;
  } catch (err) {
    throw new CorruptDataError('STATE does not parse', { file, reason: 'decode', cause: err });
  }
  if (body?.format !== STATE_FORMAT) throw new CorruptDataError('STATE is not a store state file', { file, reason: 'header' });
  if (body.version !== STATE_VERSION)
    throw new UnsupportedVersionError(`store state version ${String(body.version)} is not supported (file ${file})`);
  if (body.storeId !== storeId) throw new CorruptDataError('STATE belongs to another store', { file, reason: 'foreign' });
  if (body.collections === null || typeof body.collections !== 'object')
    throw new CorruptDataError('STATE does not list collections', { file, reason: 'decode' });
  // Keyed by collection id: no inherited key (such as "__proto__") may read as an entry.
  body.collections = Object.assign(Object.create(null) as Record<string, CollectionState>, body.collections);
  return { body, mac: macText };
}

/** What a freshness anchor holds: the newest state's generation and MAC, itself MACed. */
export interface AnchorContents {
  storeId: string;
  generation: number;
  stateMac: string;
}

/** Writes a freshness anchor atomically. */
export async function writeAnchorFile(file: string, anchor: AnchorContents, key: Uint8Array): Promise<void> {
  const line = Buffer.from(JSON.stringify({ format: ANCHOR_FORMAT, ...anchor }), 'utf8');
  await writeFileAtomic(file, Buffer.concat([line, Buffer.from(`\n${macOf(key, line)}\n`, 'latin1')]), 0o600);
}

/** Reads a freshness anchor; undefined when the file does not exist yet. */
export async function readAnchorFile(file: string, key: Uint8Array): Promise<AnchorContents | undefined> {
  let text: Buffer;
  try {
    text = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const nl = text.indexOf(0x0a);
  const macText =
    nl < 0
      ? ''
      : text
          .subarray(nl + 1)
          .toString('latin1')
          .trim();
  const line = nl < 0 ? text : text.subarray(0, nl);
  if (!/^[0-9a-f]{64}$/.test(macText) || !macEqual(macOf(key, line), macText)) {
    throw new CorruptDataError('freshness anchor does not authenticate (changed, or kept for another store)', { file, reason: 'auth' });
  }
  const a = JSON.parse(line.toString('utf8')) as AnchorContents & { format?: string };
  if (a.format !== ANCHOR_FORMAT || !Number.isSafeInteger(a.generation))
    throw new CorruptDataError('not a freshness anchor', { file, reason: 'header' });
  return { storeId: a.storeId, generation: a.generation, stateMac: a.stateMac };
}
