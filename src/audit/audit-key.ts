import { hkdfSync } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/** HKDF info label of the audit MAC key; a new format version gets a new label. */
export const AUDIT_KEY_LABEL = 'vectorseal/audit/v1';

const KEY_BYTES = 32;

/**
 * Derives the audit trail's HMAC-SHA-256 key from a 32-byte secret (the
 * keyring's audit key). The caller owns `key`; the result is a fresh buffer the
 * caller zeroes when done.
 */
export function deriveAuditMacKey(key: Uint8Array): Buffer {
  checkAuditKey(key);
  return Buffer.from(hkdfSync('sha256', key, new Uint8Array(0), AUDIT_KEY_LABEL, KEY_BYTES));
}

/** Refuses anything but 32 bytes, saying what came. */
export function checkAuditKey(key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) {
    const got = key === null ? 'null' : typeof key;
    throw new InvalidArgumentError(`"macKey" expected Uint8Array of length ${KEY_BYTES}, got ${got}`);
  }
  if (key.length !== KEY_BYTES) {
    throw new InvalidArgumentError(`"macKey" expected Uint8Array of length ${KEY_BYTES}, got length=${key.length}`);
  }
}
