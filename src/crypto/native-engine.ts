import { loadOwnAddon } from '../util/native-addon.js';
import { ClosedError, InvalidArgumentError } from '../errors.js';
import { AEAD_KEY_SIZE, PageAuthFailure, type ChunkCipher, type ChunkEngine } from './engine.js';

/** The functions the addon (src/crypto/native/aead.c) exports. */
export interface AeadAddon {
  cipher(key: Uint8Array): object;
  seal(handle: object, baseNonce: Uint8Array, counter: number, plaintext: Uint8Array, out: Uint8Array): number;
  /** Bytes written, or -(i + 1) when chunk i of the call fails to authenticate. */
  open(handle: object, baseNonce: Uint8Array, counter: number, ciphertext: Uint8Array, out: Uint8Array): number;
  dispose(handle: object): void;
  gcm(encrypt: boolean, key: Uint8Array, iv: Uint8Array, aad: Uint8Array, input: Uint8Array): Buffer | null;
  /** One-shot HMAC-SHA256 (absent from builds older than the key service's one-shot calls). */
  hmacSha256?(key: Uint8Array, data: Uint8Array): Buffer;
  /** HKDF-SHA256 message key + AES-256-GCM (zero IV) in one call: bytes written, or -1 when opening fails. */
  hkdfGcm?(
    encrypt: boolean,
    ikm: Uint8Array,
    salt: Uint8Array,
    infoPrefix: Uint8Array,
    infoSuffix: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    out: Uint8Array,
  ): number;
}

let loaded: { addon: AeadAddon; path: string } | null | undefined;

/**
 * The addon and its path (src/crypto/native/build/Release/vectorseal_aead.node,
 * found from this module's own location; VECTORSEAL_NATIVE_ADDON in the
 * process environment is tried first), or undefined when it is not built or
 * cannot load.
 */
export function loadNativeAddon(): { addon: AeadAddon; path: string } | undefined {
  if (loaded === undefined) {
    const buildDir = ['src', 'crypto', 'native', 'build', 'Release'];
    loaded = loadOwnAddon<AeadAddon>(import.meta.url, buildDir, 'vectorseal_aead.node', process.env['VECTORSEAL_NATIVE_ADDON']) ?? null;
  }
  return loaded ?? undefined;
}

let engine: ChunkEngine | undefined;

/** Loads the native page engine; undefined when the addon is not built or cannot load. */
export function loadNativeEngine(): ChunkEngine | undefined {
  if (engine) return engine;
  const found = loadNativeAddon();
  if (!found) return undefined;
  const addon = found.addon;
  engine = {
    name: 'native',
    cipher(key: Uint8Array): ChunkCipher {
      return new NativeChunkCipher(addon, key);
    },
  };
  return engine;
}

/**
 * One OpenSSL cipher context per key, made once: sealing or opening a page
 * only sets the IV. The key is not kept on the JS side; the context (and the
 * key schedule in it) is freed and cleansed by dispose(), or by the garbage
 * collector's finalizer if dispose() is never called.
 */
class NativeChunkCipher implements ChunkCipher {
  private handle: object | undefined;

  constructor(
    private readonly addon: AeadAddon,
    key: Uint8Array,
  ) {
    if (!(key instanceof Uint8Array)) throw new InvalidArgumentError(`"key" expected Uint8Array, got ${typeof key}`);
    if (key.length !== AEAD_KEY_SIZE) {
      throw new InvalidArgumentError(`"key" expected Uint8Array of length ${AEAD_KEY_SIZE}, got length=${key.length}`);
    }
    this.handle = addon.cipher(key);
  }

  seal(baseNonce: Uint8Array, counter: number, plaintext: Uint8Array, out: Uint8Array): number {
    return this.addon.seal(this.live(), baseNonce, counter, plaintext, out);
  }

  open(baseNonce: Uint8Array, counter: number, ciphertext: Uint8Array, out: Uint8Array): number {
    const n = this.addon.open(this.live(), baseNonce, counter, ciphertext, out);
    if (n < 0) throw new PageAuthFailure(counter - n - 1);
    return n;
  }

  dispose(): void {
    if (this.handle) this.addon.dispose(this.handle);
    this.handle = undefined;
  }

  private live(): object {
    if (!this.handle) throw new ClosedError('the page cipher was disposed');
    return this.handle;
  }
}
