import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/** Format version written as the first field (`v`) of every line. */
export const AUDIT_FORMAT_VERSION = 1;

export type AuditOutcome = 'ok' | 'error' | 'denied';

/** A primitive detail value; nested objects, arrays and buffers are never recorded. */
export type AuditDetailValue = string | number | boolean | null;

/**
 * What a caller records. A superset of the key manager's `KeyAuditEvent`;
 * fields not listed here are dropped, and `details` keeps only primitive
 * values under names that cannot carry key material, vectors or metadata.
 */
export interface AuditEvent {
  /** generate, unwrap, wrap, rewrap, rotate-kek, rotate-dek, re-key, disable, enable,
   * schedule-deletion, cancel-deletion, shred, destroy, open, maintain, ... */
  action: string;
  outcome: AuditOutcome;
  principal?: string;
  tenant?: string;
  collectionId?: string;
  /** KEK reference (a name or ARN), never key bytes. */
  kek?: string;
  keyId?: string;
  kekVersion?: string | number;
  dekVersion?: number;
  /** The error's stable code (or an error, whose `code` is taken). */
  error?: string | { code?: unknown; name?: unknown };
  details?: Record<string, unknown>;
}

/** The sanitized fields of one entry, in the order they are written. */
export interface SanitizedEvent {
  action: string;
  outcome: AuditOutcome;
  principal?: string;
  tenant?: string;
  collectionId?: string;
  kek?: string;
  keyId?: string;
  kekVersion?: string;
  dekVersion?: number;
  error?: string;
  details?: Record<string, AuditDetailValue>;
}

/** One line of the trail as written (and as read back). */
export interface AuditEntry extends SanitizedEvent {
  v: number;
  /** Random id of the trail, fixed when the file is created; binds the genesis link. */
  trail: string;
  seq: number;
  time: string;
  /** MAC of the previous entry (hex), or the trail's genesis value for seq 0. */
  prev: string;
  /** HMAC-SHA-256 (hex) over the canonical JSON of every other field. */
  mac: string;
}

/** The last entry of a trail: keep it elsewhere to detect a truncated tail later. */
export interface AuditHead {
  trail: string;
  seq: number;
  mac: string;
}

/** Action of the entry `AuditTrail.close()` writes last (details.reason 'close'). */
export const CHECKPOINT_ACTION = 'checkpoint';
/** Action of the entry written by `AuditTrail.open()`. */
export const TRAIL_OPEN_ACTION = 'trail-open';

const ENTRY_DOMAIN = 'vectorseal/audit/v1 entry\n';
const GENESIS_DOMAIN = 'vectorseal/audit/v1 genesis\n';
const HEX_MAC = /^[0-9a-f]{64}$/;

/** The `prev` of entry 0: bound to the trail id, so entries cannot move between trails. */
export function genesisMac(key: Uint8Array, trail: string): string {
  return createHmac('sha256', key).update(GENESIS_DOMAIN).update(trail).digest('hex');
}

/** The MAC of an entry: every field but `mac`, canonically encoded. */
export function entryMac(key: Uint8Array, entry: Omit<AuditEntry, 'mac'> | Record<string, unknown>): string {
  const rest: Record<string, unknown> = { ...entry };
  delete rest['mac'];
  return createHmac('sha256', key).update(ENTRY_DOMAIN).update(canonicalJson(rest)).digest('hex');
}

/** Whether an entry's `mac` matches its content under `key` (constant time). */
export function entryMacValid(key: Uint8Array, entry: AuditEntry): boolean {
  let expected: string;
  try {
    expected = entryMac(key, entry);
  } catch {
    return false;
  }
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(entry.mac, 'hex'));
}

/** Whether the entry is the checkpoint a clean close writes last. */
export function isCloseCheckpoint(entry: AuditEntry): boolean {
  return entry.action === CHECKPOINT_ACTION && entry.details?.['reason'] === 'close';
}

/**
 * Parses one line into an entry, checking the shape the MAC check and the
 * chain walk rely on. Extra fields are kept: they are covered by the MAC, so
 * adding one is caught there. Returns a reason string when the line is not an
 * entry at all.
 */
export function parseEntry(text: string): AuditEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const e = value as Record<string, unknown>;
  if (e['v'] !== AUDIT_FORMAT_VERSION) return `unknown format version ${JSON.stringify(e['v'])}`;
  if (typeof e['trail'] !== 'string' || e['trail'].length === 0) return 'missing trail id';
  if (typeof e['seq'] !== 'number' || !Number.isSafeInteger(e['seq']) || e['seq'] < 0) return 'bad seq';
  if (typeof e['time'] !== 'string') return 'missing time';
  if (typeof e['action'] !== 'string') return 'missing action';
  if (e['outcome'] !== 'ok' && e['outcome'] !== 'error' && e['outcome'] !== 'denied') return 'bad outcome';
  if (typeof e['prev'] !== 'string' || !HEX_MAC.test(e['prev'])) return 'bad prev';
  if (typeof e['mac'] !== 'string' || !HEX_MAC.test(e['mac'])) return 'bad mac';
  return e as unknown as AuditEntry;
}
