import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { kmsErrors } from './errors.js';

/**
 * The key service's ciphertext blob, version 1:
 *
 *   u8 version (1) | 16-byte key id (UUID bytes) | u32 BE backing-key version |
 *   12-byte IV | AES-256-GCM ciphertext | 16-byte tag
 *
 * The associated data is the header (version, key id, backing version)
 * followed by the encoded encryption context, so neither can be changed or
 * moved to another key without failing authentication.
 */
export const CIPHERTEXT_V1 = 1;
const UUID_BYTES = 16;
const HEADER_BYTES = 1 + UUID_BYTES + 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface CiphertextHeader {
  keyId: string;
  backingVersion: number;
}

/** Reads the header of a blob, or throws InvalidCiphertextException when it is not one of ours. */
export function parseCiphertextHeader(blob: Uint8Array): CiphertextHeader {
  if (blob.length < HEADER_BYTES + IV_BYTES + TAG_BYTES || blob[0] !== CIPHERTEXT_V1) {
    throw kmsErrors.invalidCiphertext('The ciphertext is not a valid ciphertext blob');
  }
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  return { keyId: uuidFromBytes(b.subarray(1, 1 + UUID_BYTES)), backingVersion: b.readUInt32BE(1 + UUID_BYTES) };
}

/** Seals `plaintext` under one backing key of `keyId`. */
export function sealCiphertext(
  backingKey: Uint8Array,
  header: CiphertextHeader,
  plaintext: Uint8Array,
  context: Record<string, string>,
): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = CIPHERTEXT_V1;
  uuidToBytes(header.keyId).copy(head, 1);
  head.writeUInt32BE(header.backingVersion, 1 + UUID_BYTES);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', backingKey, iv);
  cipher.setAAD(Buffer.concat([head, encodeEncryptionContext(context)]));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, iv, body, cipher.getAuthTag()]);
}

/** Opens a blob whose header was already parsed; any mismatch is InvalidCiphertextException. */
export function openCiphertext(backingKey: Uint8Array, blob: Uint8Array, context: Record<string, string>): Buffer {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const iv = b.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', backingKey, iv);
  decipher.setAAD(Buffer.concat([b.subarray(0, HEADER_BYTES), encodeEncryptionContext(context)]));
  decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(b.subarray(HEADER_BYTES + IV_BYTES, b.length - TAG_BYTES)), decipher.final()]);
  } catch {
    // Wrong context and tampering look the same to GCM, and AWS reports both this way.
    throw kmsErrors.invalidCiphertext('The ciphertext or its encryption context is not valid for this key');
  }
}

/**
 * The encryption context as unambiguous bytes: a domain label, the entry
 * count, then entries sorted by the UTF-8 bytes of their keys, each key and
 * value prefixed by its u32 BE byte length. `{}` and no context are the same.
 */
export function encodeEncryptionContext(context: Record<string, string>): Buffer {
  const entries = Object.entries(context).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [Buffer.from('vectorseal/kms/context/v1\0', 'utf8'), u32(entries.length)];
  for (const [k, v] of entries) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function uuidToBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

function uuidFromBytes(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
