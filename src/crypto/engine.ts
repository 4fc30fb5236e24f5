/**
 * The page AEAD: AES-256-GCM over consecutive 16 KiB chunks whose nonces are a
 * base nonce XOR the chunk counter (C2SP chunked encryption). Two engines
 * implement it and must produce identical bytes: a native addon that reuses one
 * cipher context across pages and writes into caller buffers, and a pure
 * `node:crypto` fallback.
 */

/** Plaintext bytes per chunk (page). */
export const CHUNK_SIZE = 16384;
/** AES-GCM tag bytes appended to each chunk. */
export const TAG_SIZE = 16;
/** Ciphertext bytes of a full chunk. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
export const AEAD_KEY_SIZE = 32;
export const NONCE_SIZE = 12;
/** Chunk counters must stay below 2^38 (C2SP). */
export const MAX_CHUNKS = 2 ** 38;

/** Thrown by an engine when a chunk fails to authenticate. `page` is the absolute chunk index. */
export class PageAuthFailure extends Error {
  constructor(readonly page: number) {
    super(`chunk ${page} failed to authenticate`);
    this.name = 'PageAuthFailure';
  }
}

/** An AEAD bound to one key. */
export interface ChunkCipher {
  /**
   * Seals `plaintext` as consecutive chunks numbered from `counter`: full
   * 16 KiB chunks and, when the length is not a multiple of 16 KiB (or is 0),
   * one short chunk. Writes ciphertext||tag per chunk into `out` and returns
   * the bytes written. Framing rules (the final chunk must be short) are the
   * caller's.
   */
  seal(baseNonce: Uint8Array, counter: number, plaintext: Uint8Array, out: Uint8Array): number;
  /**
   * Opens consecutive sealed chunks numbered from `counter` into `out` and
   * returns the plaintext bytes written. Throws {@link PageAuthFailure} naming
   * the first chunk that fails; `out` is then unspecified.
   */
  open(baseNonce: Uint8Array, counter: number, ciphertext: Uint8Array, out: Uint8Array): number;
  /** Zeroes and releases the key. */
  dispose(): void;
}

export interface ChunkEngine {
  readonly name: string;
  cipher(key: Uint8Array): ChunkCipher;
}

/** Sealed size of `plaintextLength` bytes split into chunks (no framing rules). */
export function sealedSize(plaintextLength: number): number {
  const chunks = plaintextLength === 0 ? 1 : Math.ceil(plaintextLength / CHUNK_SIZE);
  return plaintextLength + chunks * TAG_SIZE;
}

/** Plaintext size of `sealedLength` bytes of chunks, or -1 when no chunking has that length. */
export function openedSize(sealedLength: number): number {
  const full = Math.floor(sealedLength / SEALED_CHUNK_SIZE);
  const rest = sealedLength - full * SEALED_CHUNK_SIZE;
  if (rest === 0) return full === 0 ? -1 : full * CHUNK_SIZE;
  if (rest < TAG_SIZE) return -1;
  return full * CHUNK_SIZE + rest - TAG_SIZE;
}

/** Writes baseNonce XOR counter (big-endian, as wide as the nonce) into `out`. */
export function chunkNonce(baseNonce: Uint8Array, counter: number, out: Uint8Array): Uint8Array {
  out.set(baseNonce);
  let c = counter;
  for (let i = NONCE_SIZE - 1; i >= NONCE_SIZE - 5 && c > 0; i--) {
    out[i] = (out[i] ?? 0) ^ (c % 256);
    c = Math.floor(c / 256);
  }
  return out;
}
