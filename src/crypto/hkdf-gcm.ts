import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { TAG_SIZE } from './engine.js';
import { loadNativeAddon } from './native-engine.js';

/**
 * A one-message AEAD: the message key is HKDF-SHA256 (RFC 5869) of `ikm`
 * with `salt` and info = `infoPrefix || infoSuffix`, 32 bytes, and the
 * message is AES-256-GCM under it with an all-zero IV (each derived key seals
 * exactly one message) and `aad`. The key service's ciphertexts (format 2)
 * are this; the native build does it in one call with no key object, the
 * node:crypto build gives the same bytes.
 */
export interface HkdfGcm {
  readonly name: string;
  /** Writes ciphertext || 16-byte tag into `out` (at least plaintext + 16 bytes); returns the bytes written. */
  seal(
    ikm: Uint8Array,
    salt: Uint8Array,
    infoPrefix: Uint8Array,
    infoSuffix: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): number;
  /**
   * Writes the plaintext of ciphertext || tag into `out` (at least sealed - 16
   * bytes); returns its length, or -1 (out zeroed) when it does not authenticate.
   */
  open(
    ikm: Uint8Array,
    salt: Uint8Array,
    infoPrefix: Uint8Array,
    infoSuffix: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
  ): number;
}

const ZERO_IV = Buffer.alloc(12);
const ONE = Uint8Array.of(1);

/**
 * The message key, written out as HKDF's two HMACs (Extract: PRK = HMAC(salt,
 * ikm); the single Expand block: HMAC(PRK, info || 0x01)): `hkdfSync` builds
 * and checks a KeyObject per call, which costs more than the hashing.
 */
export function hkdfSha256Key(ikm: Uint8Array, salt: Uint8Array, infoPrefix: Uint8Array, infoSuffix: Uint8Array): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  try {
    return createHmac('sha256', prk).update(infoPrefix).update(infoSuffix).update(ONE).digest();
  } finally {
    prk.fill(0);
  }
}

/** node:crypto: two Hmac objects and a Cipheriv per message. */
export const nodeHkdfGcm: HkdfGcm = {
  name: 'node',
  seal(ikm, salt, infoPrefix, infoSuffix, aad, plaintext, out) {
    const key = hkdfSha256Key(ikm, salt, infoPrefix, infoSuffix);
    try {
      const cipher = createCipheriv('aes-256-gcm', key, ZERO_IV, { authTagLength: TAG_SIZE });
      cipher.setAAD(aad);
      let at = 0;
      for (const part of [cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]) {
        out.set(part, at);
        at += part.length;
      }
      return at;
    } finally {
      key.fill(0);
    }
  },
  open(ikm, salt, infoPrefix, infoSuffix, aad, sealed, out) {
    if (sealed.length < TAG_SIZE) return -1;
    const body = sealed.length - TAG_SIZE;
    const key = hkdfSha256Key(ikm, salt, infoPrefix, infoSuffix);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, ZERO_IV, { authTagLength: TAG_SIZE });
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(body));
      const plain = decipher.update(sealed.subarray(0, body));
      try {
        decipher.final();
      } catch {
        plain.fill(0);
        out.fill(0, 0, body);
        return -1;
      }
      out.set(plain);
      plain.fill(0);
      return body;
    } finally {
      key.fill(0);
    }
  },
};

/** The native addon's one-call HKDF + AES-GCM, or undefined when the addon (or this function of it) is not built. */
export function loadNativeHkdfGcm(): HkdfGcm | undefined {
  const addon = loadNativeAddon()?.addon;
  const fn = addon?.hkdfGcm;
  if (addon === undefined || fn === undefined) return undefined;
  return {
    name: 'native',
    seal: (ikm, salt, p, s, aad, plaintext, out) => fn.call(addon, true, ikm, salt, p, s, aad, plaintext, out),
    open: (ikm, salt, p, s, aad, sealed, out) => (sealed.length < TAG_SIZE ? -1 : fn.call(addon, false, ikm, salt, p, s, aad, sealed, out)),
  };
}

let chosen: HkdfGcm | undefined;

/** The native build when it loads, else node:crypto's; `VECTORSEAL_CRYPTO=node` forces the latter. */
export function defaultHkdfGcm(): HkdfGcm {
  chosen ??= process.env['VECTORSEAL_CRYPTO'] === 'node' ? nodeHkdfGcm : (loadNativeHkdfGcm() ?? nodeHkdfGcm);
  return chosen;
}
