import { InvalidArgumentError } from '../errors.js';
import type { AuditDetailValue, AuditEvent, AuditOutcome, SanitizedEvent } from './entry.js';
import { REDACTED_FIELDS } from '../util/redacted-fields.js';

export type { SanitizedEvent };

const STRING_FIELDS = ['tenant', 'collectionId', 'kek', 'keyId'] as const;

/**
 * Names that must never reach the trail. The allow-list below already drops
 * them; they also go to pino's `redact` (with `remove`) so that a bug in the
 * allow-list loses the field instead of writing it (the entry then fails its
 * MAC and `verify` reports it, which is the right failure). The trail's own
 * top-level fields (`kek` is a KEK's name) are sanitized strings and stay.
 */
export { REDACTED_FIELDS };

/** pino `redact.paths`: each forbidden name at the top level and inside `details`. */
export const REDACT_PATHS: readonly string[] = REDACTED_FIELDS.flatMap((name) =>
  (STRING_FIELDS as readonly string[]).includes(name) ? [`details.${name}`] : [name, `details.${name}`],
);

const OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['ok', 'error', 'denied']);
const ACTION = /^[a-z][a-z0-9._:-]{0,63}$/;
const DETAIL_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const MAX_STRING = 256;
const MAX_DETAILS = 32;

/** Words that mark a field as carrying secrets or user data, wherever they appear in its name. */
const ALWAYS_SECRET = new Set([
  'plaintext',
  'ciphertext',
  'vector',
  'vectors',
  'embedding',
  'embeddings',
  'metadata',
  'meta',
  'secret',
  'secrets',
  'pin',
  'password',
  'passphrase',
  'token',
  'material',
  'credential',
  'credentials',
  'private',
  'payload',
  'raw',
  'bytes',
  'wrapped',
]);
/** Words naming a key: allowed only when the name ends in a word that makes it a reference. */
const KEY_WORDS = new Set(['key', 'keys', 'dek', 'deks', 'kek', 'keks']);
const REFERENCE_SUFFIX = new Set([
  'id',
  'ids',
  'ref',
  'arn',
  'alias',
  'name',
  'version',
  'versions',
  'count',
  'state',
  'spec',
  'usage',
  'provider',
]);

/**
 * Keeps only the allow-listed fields of an event, as plain strings and
 * numbers. Key bytes, vectors, metadata and anything else the caller passed
 * are dropped, never written. A missing or malformed `action`/`outcome` is a
 * caller bug and throws.
 */
export function sanitizeEvent(event: AuditEvent, defaultPrincipal?: string): SanitizedEvent {
  if (typeof event !== 'object' || event === null) {
    throw new InvalidArgumentError(`audit event expected an object, got ${event === null ? 'null' : typeof event}`);
  }
  if (typeof event.action !== 'string' || !ACTION.test(event.action)) {
    throw new InvalidArgumentError(`audit event "action" expected a lower-case word like "rotate-kek", got ${describe(event.action)}`);
  }
  if (typeof event.outcome !== 'string' || !OUTCOMES.has(event.outcome)) {
    throw new InvalidArgumentError(`audit event "outcome" expected 'ok', 'error' or 'denied', got ${describe(event.outcome)}`);
  }
  const out: SanitizedEvent = { action: event.action, outcome: event.outcome };
  const principal = event.principal ?? defaultPrincipal;
  if (principal !== undefined) {
    const value = cleanString(principal);
    if (value !== undefined) out.principal = value;
  }
  for (const field of STRING_FIELDS) {
    const value = cleanString(event[field]);
    if (value !== undefined) out[field] = value;
  }
  const kekVersion = typeof event.kekVersion === 'number' ? cleanNumber(event.kekVersion)?.toString() : cleanString(event.kekVersion);
  if (kekVersion !== undefined) out.kekVersion = kekVersion;
  const dekVersion = cleanNumber(event.dekVersion);
  if (dekVersion !== undefined) out.dekVersion = dekVersion;
  const error = cleanError(event.error);
  if (error !== undefined) out.error = error;
  const details = cleanDetails(event.details);
  if (details !== undefined) out.details = details;
  return out;
}

/** Whether a detail name may be written: no secret word, and key words only as references. */
export function detailNameAllowed(name: string): boolean {
  if (!DETAIL_NAME.test(name)) return false;
  // A name pino would remove after the MAC is computed is dropped here instead (the entry stays verifiable).
  if (REDACTED_FIELDS.includes(name)) return false;
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s_.-]+/)
    .map((word) => word.toLowerCase())
    .filter((word) => word.length > 0);
  if (words.some((word) => ALWAYS_SECRET.has(word))) return false;
  if (words.some((word) => KEY_WORDS.has(word))) {
    const last = words[words.length - 1];
    return last !== undefined && REFERENCE_SUFFIX.has(last);
  }
  return true;
}

function cleanDetails(details: unknown): Record<string, AuditDetailValue> | undefined {
  if (typeof details !== 'object' || details === null || Array.isArray(details) || ArrayBuffer.isView(details)) {
    return undefined;
  }
  const out: Record<string, AuditDetailValue> = {};
  let count = 0;
  for (const [name, value] of Object.entries(details as Record<string, unknown>)) {
    if (count >= MAX_DETAILS) break;
    if (!detailNameAllowed(name)) continue;
    let clean: AuditDetailValue | undefined;
    if (value === null || typeof value === 'boolean') clean = value;
    else if (typeof value === 'number') clean = cleanNumber(value);
    else if (typeof value === 'string') clean = cleanString(value);
    if (clean === undefined) continue;
    out[name] = clean;
    count += 1;
  }
  return count === 0 ? undefined : out;
}

function cleanError(error: unknown): string | undefined {
  if (typeof error === 'string') return cleanString(error);
  if (typeof error === 'object' && error !== null) {
    // Only the stable code (or class name): messages may quote caller input.
    const { code, name } = error as { code?: unknown; name?: unknown };
    if (typeof code === 'string') return cleanString(code);
    if (typeof name === 'string') return cleanString(name);
    return 'unknown';
  }
  return undefined;
}

function cleanNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Strings only, well-formed UTF-16 (so they survive UTF-8 and JSON exactly), capped in length. */
function cleanString(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const wellFormed = value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  if (wellFormed.length <= MAX_STRING) return wellFormed;
  // Cut on a code point boundary.
  let end = MAX_STRING;
  const code = wellFormed.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${wellFormed.slice(0, end)}…`;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return value === null ? 'null' : typeof value;
}
