import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { TAG_SIZE } from './engine.js';
import { loadNativeAddon } from './native-engine.js';

/**
 * One-shot AES-GCM (any key size, IV length and associated data), from
 * node:crypto and from the native addon. The page engines use empty AAD and
 * derived nonces; this is the bare primitive under them, so that conformance
 * vectors with AAD and odd IVs (Wycheproof aes_gcm_test.json) can exercise
 * both builds of it. It allocates and sets a key per call: fine for small
 * messages (wrapped DEKs), not for pages.
 */
export interface GcmPrimitive {
  readonly name: string;
  /** Returns ciphertext || 16-byte tag. */
  seal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Takes ciphertext || tag; returns the plaintext, or undefined when the tag does not verify. */
  open(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined;
}

const algorithm = (key: Uint8Array): CipherGCMTypes => `aes-${key.length * 8}-gcm` as CipherGCMTypes;

export const nodeGcm: GcmPrimitive = {
  name: 'node',
  seal(key, iv, aad, plaintext) {
    const cipher = createCipheriv(algorithm(key), key, iv, { authTagLength: TAG_SIZE });
    cipher.setAAD(aad);
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  },
  open(key, iv, aad, sealed) {
    if (sealed.length < TAG_SIZE) return undefined;
    const body = sealed.length - TAG_SIZE;
    const decipher = createDecipheriv(algorithm(key), key, iv, { authTagLength: TAG_SIZE });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(body));
    const out = decipher.update(sealed.subarray(0, body));
    try {
      decipher.final();
    } catch {
      out.fill(0);
      return undefined;
    }
    return out;
  },
};

/** The native addon's one-shot AES-GCM, or undefined when the addon is not built. */
export function loadNativeGcm(): GcmPrimitive | undefined {
  const found = loadNativeAddon();
  if (!found) return undefined;
  const { addon } = found;
  return {
    name: 'native',
    seal: (key, iv, aad, plaintext) => addon.gcm(true, key, iv, aad, plaintext) as Uint8Array,
    open: (key, iv, aad, sealed) => (sealed.length < TAG_SIZE ? undefined : (addon.gcm(false, key, iv, aad, sealed) ?? undefined)),
  };
}

let chosen: GcmPrimitive | undefined;

/**
 * The one-shot AES-GCM for small messages such as wrapped DEKs: the native
 * addon's when it loads (about twice as fast for a 32-byte key, which a KEK
 * rotation of many collections does three times per DEK), else node:crypto's;
 * `VECTORSEAL_CRYPTO=node` forces the latter, as for the page engine. Both
 * are the same AES-GCM, checked against the same vectors.
 */
export function defaultGcm(): GcmPrimitive {
  chosen ??= process.env['VECTORSEAL_CRYPTO'] === 'node' ? nodeGcm : (loadNativeGcm() ?? nodeGcm);
  return chosen;
}
