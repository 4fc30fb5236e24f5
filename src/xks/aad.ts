import { createHash } from 'node:crypto';

/**
 * The two byte layouts of the XKS spec that decide interoperability.
 *
 * HSM AAD (Encrypt, "ciphertextMetadata"): 2-byte big-endian length of the
 * request's AAD || AAD || 1-byte length of the ciphertext metadata ||
 * metadata. The lengths keep "AAD=x, no metadata" and "no AAD, metadata=x"
 * apart.
 *
 * CDIV (Appendix C): SHA-256 over AAD || ciphertextMetadata ||
 * initializationVector || ciphertext || authenticationTag, without lengths
 * (it guards against bit flips, not an attacker).
 */

export const MAX_AAD_BYTES = 0xffff;
export const MAX_METADATA_BYTES = 20;

export function hsmAad(aad: Buffer | undefined, metadata: Buffer | undefined): Buffer {
  const a = aad ?? Buffer.alloc(0);
  const m = metadata ?? Buffer.alloc(0);
  const out = Buffer.alloc(2 + a.length + 1 + m.length);
  out.writeUInt16BE(a.length, 0);
  a.copy(out, 2);
  out.writeUInt8(m.length, 2 + a.length);
  m.copy(out, 3 + a.length);
  return out;
}

export function cdiv(parts: { aad?: Buffer; metadata?: Buffer; iv: Buffer; ciphertext: Buffer; tag: Buffer }): Buffer {
  const h = createHash('sha256');
  if (parts.aad) h.update(parts.aad);
  if (parts.metadata) h.update(parts.metadata);
  return h.update(parts.iv).update(parts.ciphertext).update(parts.tag).digest();
}
