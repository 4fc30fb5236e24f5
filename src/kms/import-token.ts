import { kmsErrors } from './errors.js';

/** How long GetParametersForImport's token and public key stay valid. */
export const IMPORT_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;

const MAGIC = Buffer.from('VSIT1', 'ascii');

/**
 * The import token names the key and the import parameters it belongs to.
 * It carries no secret: the matching private key stays in the key store, so a
 * token for another key, or an older token, is simply not found there.
 */
export function encodeImportToken(keyId: string, tokenId: string): Buffer {
  return Buffer.concat([MAGIC, Buffer.from(keyId.replace(/-/g, ''), 'hex'), Buffer.from(tokenId, 'hex')]);
}

export function decodeImportToken(token: Uint8Array): { keyId: string; tokenId: string } {
  const b = Buffer.from(token);
  if (b.length !== MAGIC.length + 32 || !b.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw kmsErrors.invalidImportToken('The import token is not valid');
  }
  const h = b.subarray(MAGIC.length, MAGIC.length + 16).toString('hex');
  const keyId = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  return { keyId, tokenId: b.subarray(MAGIC.length + 16).toString('hex') };
}
