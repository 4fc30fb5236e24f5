import { defaultGcm } from '../crypto/gcm.js';
import { defaultHkdfGcm, hkdfSha256Key } from '../crypto/hkdf-gcm.js';
import { kmsErrors } from './errors.js';
import { poolRandomFill } from './random-pool.js';

/**
 * The key service's ciphertext blobs.
 *
 * Version 2 (written now):
 *
 *   u8 version (2) | u8 id kind (0 = UUID key id, 1 = multi-region "mrk-" id) |
 *   16-byte key id | u32 BE backing-key version | 32-byte random nonce |
 *   AES-256-GCM ciphertext | 16-byte tag
 *
 * Each message is sealed under its own key, HKDF-SHA256(backing key, salt =
 * nonce, info = label + header), so no backing key ever meets enough random
 * 96-bit IVs for a collision to matter: there is no usage limit per backing
 * key. A derived key seals one message only, so its GCM IV is all zeros.
 *
 * Version 1 (still read, never written): u8 1 | 16-byte UUID | u32 BE version |
 * 12-byte random IV | ciphertext | tag, under the backing key itself.
 *
 * In both, the associated data is the header followed by the encoded
 * encryption context, so neither can be changed or moved to another key
 * without failing authentication.
 */
export const CIPHERTEXT_V1 = 1;
export const CIPHERTEXT_V2 = 2;
const ID_BYTES = 16;
const V1_HEADER = 1 + ID_BYTES + 4;
const V2_HEADER = 2 + ID_BYTES + 4;
const IV_BYTES = 12;
const NONCE_BYTES = 32;
const TAG_BYTES = 16;
const MESSAGE_KEY_INFO = Buffer.from('vectorseal/kms/message-key/v2\0', 'utf8');
const MRK = /^mrk-[0-9a-f]{32}$/;

export interface CiphertextHeader {
  keyId: string;
  backingVersion: number;
}

/** Reads the header of a blob, or throws InvalidCiphertextException when it is not one of ours. */
export function parseCiphertextHeader(blob: Uint8Array): CiphertextHeader {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length >= V2_HEADER + NONCE_BYTES + TAG_BYTES && b[0] === CIPHERTEXT_V2 && (b[1] === 0 || b[1] === 1)) {
    const id = b.subarray(2, 2 + ID_BYTES);
    return { keyId: b[1] === 1 ? `mrk-${id.toString('hex')}` : uuidFromBytes(id), backingVersion: b.readUInt32BE(2 + ID_BYTES) };
  }
  if (b.length >= V1_HEADER + IV_BYTES + TAG_BYTES && b[0] === CIPHERTEXT_V1) {
    return { keyId: uuidFromBytes(b.subarray(1, 1 + ID_BYTES)), backingVersion: b.readUInt32BE(1 + ID_BYTES) };
  }
  throw kmsErrors.invalidCiphertext('The ciphertext is not a valid ciphertext blob');
}

/** Seals `plaintext` under one backing key of `keyId`, in the version 2 format. */
export function sealCiphertext(
  backingKey: Uint8Array,
  header: CiphertextHeader,
  plaintext: Uint8Array,
  context: Record<string, string>,
): Buffer {
  // The blob is built in place: header, nonce, then the sealed body written by the AEAD itself.
  const bodyStart = V2_HEADER + NONCE_BYTES;
  const out = Buffer.allocUnsafe(bodyStart + plaintext.length + TAG_BYTES);
  out.set(idBytes(header.keyId), 0);
  out.writeUInt32BE(header.backingVersion, 2 + ID_BYTES);
  poolRandomFill(out, V2_HEADER, NONCE_BYTES);
  const head = out.subarray(0, V2_HEADER);
  // HKDF-SHA256 message key and AES-256-GCM in one call (one native crossing when the addon is built).
  defaultHkdfGcm().seal(
    backingKey,
    out.subarray(V2_HEADER, bodyStart),
    MESSAGE_KEY_INFO,
    head,
    encodeEncryptionContext(context, head),
    plaintext,
    out.subarray(bodyStart),
  );
  return out;
}

/** Opens a blob whose header was already parsed; any mismatch is InvalidCiphertextException. */
export function openCiphertext(backingKey: Uint8Array, blob: Uint8Array, context: Record<string, string>): Buffer {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const v2 = b[0] === CIPHERTEXT_V2;
  const headerEnd = v2 ? V2_HEADER : V1_HEADER;
  const bodyStart = headerEnd + (v2 ? NONCE_BYTES : IV_BYTES);
  const head = b.subarray(0, headerEnd);
  const aad = encodeEncryptionContext(context, head);
  const sealed = b.subarray(bodyStart);
  let plain: Buffer | undefined;
  if (v2) {
    const out = Buffer.alloc(Math.max(0, sealed.length - TAG_BYTES));
    const n = defaultHkdfGcm().open(backingKey, b.subarray(headerEnd, bodyStart), MESSAGE_KEY_INFO, head, aad, sealed, out);
    plain = n < 0 ? undefined : out;
  } else {
    let opened: Uint8Array | undefined;
    try {
      opened = defaultGcm().open(backingKey, b.subarray(headerEnd, bodyStart), aad, sealed);
    } catch {
      opened = undefined;
    }
    plain = opened === undefined ? undefined : Buffer.from(opened.buffer, opened.byteOffset, opened.byteLength);
  }
  // Wrong context and tampering look the same to GCM, and AWS reports both this way.
  if (plain === undefined) throw kmsErrors.invalidCiphertext('The ciphertext or its encryption context is not valid for this key');
  return plain;
}

/**
 * HKDF-SHA256 (RFC 5869) of the backing key, salt = nonce, info = label +
 * header, 32 bytes: the message key of a version 2 blob (sealCiphertext
 * derives it inside the one-call AEAD; this is the same derivation on its
 * own, which tests compare with `hkdfSync`).
 */
export function deriveMessageKey(backingKey: Uint8Array, nonce: Uint8Array, header: Buffer): Buffer {
  return hkdfSha256Key(backingKey, nonce, MESSAGE_KEY_INFO, header);
}

/** A version 2 header's first 18 bytes (version, id kind, 16-byte id) by key id; ids are few, so they are kept. */
const idCache = new Map<string, Buffer>();

function idBytes(keyId: string): Buffer {
  let b = idCache.get(keyId);
  if (b === undefined) {
    b = Buffer.alloc(2 + ID_BYTES);
    b[0] = CIPHERTEXT_V2;
    if (MRK.test(keyId)) {
      b[1] = 1;
      Buffer.from(keyId.slice(4), 'hex').copy(b, 2);
    } else {
      b[1] = 0;
      uuidToBytes(keyId).copy(b, 2);
    }
    if (idCache.size >= 4096) idCache.clear();
    idCache.set(keyId, b);
  }
  return b;
}

/**
 * The encryption context as unambiguous bytes: a domain label, the entry
 * count, then entries sorted by the UTF-8 bytes of their keys, each key and
 * value prefixed by its u32 BE byte length. `{}` and no context are the same.
 * With `prefix`, the result is `prefix` followed by those bytes (the
 * ciphertext's associated data), built in one buffer.
 */
export function encodeEncryptionContext(context: Record<string, string>, prefix?: Uint8Array): Buffer {
  const entries: [Buffer, Buffer][] = [];
  let size = (prefix?.length ?? 0) + CONTEXT_LABEL.length + 4;
  for (const [k, v] of Object.entries(context)) {
    const entry: [Buffer, Buffer] = [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')];
    size += 8 + entry[0].length + entry[1].length;
    entries.push(entry);
  }
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  // Every byte is written below, so the buffer need not be zeroed first.
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (prefix !== undefined) {
    out.set(prefix, 0);
    at = prefix.length;
  }
  out.set(CONTEXT_LABEL, at);
  at = out.writeUInt32BE(entries.length, at + CONTEXT_LABEL.length);
  for (const [k, v] of entries) {
    at = out.writeUInt32BE(k.length, at);
    out.set(k, at);
    at = out.writeUInt32BE(v.length, at + k.length);
    out.set(v, at);
    at += v.length;
  }
  return out;
}

const CONTEXT_LABEL = Buffer.from('vectorseal/kms/context/v1\0', 'utf8');

function uuidToBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

function uuidFromBytes(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
