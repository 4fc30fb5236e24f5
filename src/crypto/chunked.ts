import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CorruptDataError, InvalidArgumentError, LimitExceededError } from '../errors.js';
import {
  AEAD_KEY_SIZE,
  CHUNK_SIZE,
  MAX_CHUNKS,
  NONCE_SIZE,
  PageAuthFailure,
  SEALED_CHUNK_SIZE,
  TAG_SIZE,
  openedSize,
  sealedSize,
  type ChunkCipher,
  type ChunkEngine,
} from './engine.js';
import { defaultEngine } from './engines.js';
import { hkdfExpandSha512 } from './hkdf.js';

/**
 * C2SP chunked encryption (c2sp.org/chunked-encryption), instantiated as
 * Cobblestone-256: HKDF-SHA-512 (Expand only) from the input key, a 24-byte
 * random salt and the caller's context derives an AES-256-GCM key, a base
 * nonce and a 32-byte key commitment; the message is cut in 16 KiB chunks
 * whose last one is always short (possibly empty), each sealed under
 * base nonce XOR chunk counter.
 *
 * Layout: salt (24) || commitment (32) || chunk 0 || chunk 1 || ... where each
 * chunk is ciphertext || tag (16). Any chunk (page) can be opened on its own.
 */

export const SALT_SIZE = 24;
export const COMMITMENT_SIZE = 32;
/** Bytes before the first chunk: salt and commitment. */
export const MESSAGE_HEADER_SIZE = SALT_SIZE + COMMITMENT_SIZE;
export const AEAD_NAME = 'AEAD_AES_256_GCM';
export { CHUNK_SIZE, SEALED_CHUNK_SIZE, TAG_SIZE };

const INFO_PREFIX = Buffer.from(`c2sp.org/chunked-encryption@v1+${AEAD_NAME}\0`, 'latin1');

export interface MessageKeys {
  aeadKey: Buffer;
  baseNonce: Buffer;
  commitment: Buffer;
}

export interface ChunkedOptions {
  /** The page engine; the native one when it is built, else node:crypto. */
  engine?: ChunkEngine;
}

export interface SealOptions extends ChunkedOptions {
  /** A fixed salt, for conformance tests only: a salt must never repeat under one key. */
  salt?: Uint8Array;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) {
    throw new InvalidArgumentError(`"key" expected Uint8Array, got ${typeof key}`);
  }
  if (key.length !== AEAD_KEY_SIZE) {
    throw new InvalidArgumentError(`"key" expected Uint8Array of length ${AEAD_KEY_SIZE}, got length=${key.length}`);
  }
}

function checkBytes(name: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new InvalidArgumentError(`"${name}" expected Uint8Array, got ${value === null ? 'null' : typeof value}`);
  }
}

/** Derives the per-message AEAD key, base nonce and commitment. */
export function deriveMessageKeys(key: Uint8Array, salt: Uint8Array, context: Uint8Array): MessageKeys {
  checkKey(key);
  checkBytes('context', context);
  if (salt.length !== SALT_SIZE) {
    throw new InvalidArgumentError(`"salt" expected Uint8Array of length ${SALT_SIZE}, got length=${salt.length}`);
  }
  const info = Buffer.concat([INFO_PREFIX, salt, context]);
  const okm = hkdfExpandSha512(key, info, AEAD_KEY_SIZE + NONCE_SIZE + COMMITMENT_SIZE);
  const keys = {
    aeadKey: Buffer.from(okm.subarray(0, AEAD_KEY_SIZE)),
    baseNonce: Buffer.from(okm.subarray(AEAD_KEY_SIZE, AEAD_KEY_SIZE + NONCE_SIZE)),
    commitment: Buffer.from(okm.subarray(AEAD_KEY_SIZE + NONCE_SIZE)),
  };
  okm.fill(0);
  return keys;
}

/** Sealed length of a message of `plaintextLength` bytes. */
export function sealedLength(plaintextLength: number): number {
  return MESSAGE_HEADER_SIZE + plaintextLength + (Math.floor(plaintextLength / CHUNK_SIZE) + 1) * TAG_SIZE;
}

/**
 * Plaintext length of a sealed message of `length` bytes. Throws
 * CorruptDataError('truncated') for lengths no message has: shorter than a
 * header plus one tag, or ending in a full chunk (the final one is missing).
 */
export function messageLength(length: number): number {
  const body = length - MESSAGE_HEADER_SIZE;
  const plain = body < TAG_SIZE ? -1 : openedSize(body);
  if (plain < 0 || body % SEALED_CHUNK_SIZE === 0) {
    throw new CorruptDataError(`sealed message of ${length} bytes is truncated`, { reason: 'truncated' });
  }
  return plain;
}

/** Number of chunks (pages) in a message of `plaintextLength` bytes, the short final one included. */
export function chunkCount(plaintextLength: number): number {
  return Math.floor(plaintextLength / CHUNK_SIZE) + 1;
}

/** Byte offset of chunk `index` inside a sealed message. */
export function chunkOffset(index: number): number {
  return MESSAGE_HEADER_SIZE + index * SEALED_CHUNK_SIZE;
}

/**
 * Seals a whole message. Returns salt || commitment || chunks.
 */
export function seal(key: Uint8Array, context: Uint8Array, plaintext: Uint8Array, options: SealOptions = {}): Uint8Array {
  checkBytes('plaintext', plaintext);
  const sealer = new MessageSealer(key, context, options);
  try {
    const out = Buffer.allocUnsafe(sealedLength(plaintext.length));
    out.set(sealer.header, 0);
    const fullBytes = Math.floor(plaintext.length / CHUNK_SIZE) * CHUNK_SIZE;
    let off = MESSAGE_HEADER_SIZE;
    if (fullBytes > 0) off += sealer.sealChunks(plaintext.subarray(0, fullBytes), out.subarray(off));
    off += sealer.sealFinal(plaintext.subarray(fullBytes), out.subarray(off));
    return out.subarray(0, off);
  } finally {
    sealer.dispose();
  }
}

/**
 * Opens a whole message; throws CorruptDataError (with `page` where one chunk
 * is at fault) on any failure, and never returns partial plaintext.
 */
export function open(key: Uint8Array, context: Uint8Array, ciphertext: Uint8Array, options: ChunkedOptions = {}): Uint8Array {
  checkBytes('ciphertext', ciphertext);
  checkKey(key);
  if (ciphertext.length < MESSAGE_HEADER_SIZE) {
    throw new CorruptDataError(`sealed message of ${ciphertext.length} bytes is shorter than its header`, { reason: 'truncated' });
  }
  const opener = new MessageOpener(key, context, ciphertext.subarray(0, MESSAGE_HEADER_SIZE), options);
  try {
    const length = messageLength(ciphertext.length);
    const out = Buffer.allocUnsafe(length);
    try {
      opener.openRange(0, ciphertext.subarray(MESSAGE_HEADER_SIZE), out, true);
    } catch (err) {
      out.fill(0);
      throw err;
    }
    return out;
  } finally {
    opener.dispose();
  }
}

/**
 * Seals a message incrementally: write `header`, then the output of
 * `sealChunks` for whole 16 KiB chunks in order, then `sealFinal` once.
 */
export class MessageSealer {
  /** salt || commitment: the first 56 bytes of the message. */
  readonly header: Uint8Array;
  private readonly cipher: ChunkCipher;
  private readonly baseNonce: Buffer;
  private counter = 0;
  private finished = false;

  constructor(key: Uint8Array, context: Uint8Array, options: SealOptions = {}) {
    const salt = options.salt ?? randomBytes(SALT_SIZE);
    const keys = deriveMessageKeys(key, salt, context);
    this.header = Buffer.concat([salt, keys.commitment]);
    this.baseNonce = keys.baseNonce;
    this.cipher = (options.engine ?? defaultEngine()).cipher(keys.aeadKey);
    keys.aeadKey.fill(0);
  }

  /** Index of the next chunk to be sealed. */
  get nextChunk(): number {
    return this.counter;
  }

  /** Seals whole chunks (length a non-zero multiple of 16 KiB) into `out`; returns bytes written. */
  sealChunks(plaintext: Uint8Array, out: Uint8Array): number {
    if (this.finished) throw new InvalidArgumentError('message already finished');
    if (plaintext.length === 0 || plaintext.length % CHUNK_SIZE !== 0) {
      throw new InvalidArgumentError(`"plaintext" expected a non-zero multiple of ${CHUNK_SIZE} bytes, got length=${plaintext.length}`);
    }
    const chunks = plaintext.length / CHUNK_SIZE;
    this.reserve(chunks);
    const n = this.cipher.seal(this.baseNonce, this.counter, plaintext, out);
    this.counter += chunks;
    return n;
  }

  /** Seals the final short chunk (shorter than 16 KiB, possibly empty); returns bytes written. */
  sealFinal(plaintext: Uint8Array, out: Uint8Array): number {
    if (this.finished) throw new InvalidArgumentError('message already finished');
    if (plaintext.length >= CHUNK_SIZE) {
      throw new InvalidArgumentError(`final chunk expected fewer than ${CHUNK_SIZE} bytes, got length=${plaintext.length}`);
    }
    this.reserve(1);
    const n = this.cipher.seal(this.baseNonce, this.counter, plaintext, out);
    this.counter += 1;
    this.finished = true;
    return n;
  }

  dispose(): void {
    this.cipher.dispose();
    this.baseNonce.fill(0);
  }

  private reserve(chunks: number): void {
    if (this.counter + chunks > MAX_CHUNKS) {
      throw new LimitExceededError('message exceeds 2^38 chunks');
    }
  }
}

/**
 * Opens chunks of one message, in any order: the commitment is checked once,
 * when the opener is made, before any chunk is decrypted.
 */
export class MessageOpener {
  private readonly cipher: ChunkCipher;
  private readonly baseNonce: Buffer;

  constructor(key: Uint8Array, context: Uint8Array, header: Uint8Array, options: ChunkedOptions = {}) {
    checkKey(key);
    checkBytes('header', header);
    if (header.length !== MESSAGE_HEADER_SIZE) {
      throw new CorruptDataError(`message header expected ${MESSAGE_HEADER_SIZE} bytes, got ${header.length}`, { reason: 'truncated' });
    }
    const keys = deriveMessageKeys(key, header.subarray(0, SALT_SIZE), context);
    const ok = timingSafeEqual(keys.commitment, header.subarray(SALT_SIZE, MESSAGE_HEADER_SIZE));
    if (!ok) {
      keys.aeadKey.fill(0);
      keys.baseNonce.fill(0);
      throw new CorruptDataError('key commitment mismatch: wrong key, wrong context or a modified header', {
        reason: 'commitment',
      });
    }
    this.baseNonce = keys.baseNonce;
    this.cipher = (options.engine ?? defaultEngine()).cipher(keys.aeadKey);
    keys.aeadKey.fill(0);
  }

  /**
   * Opens one sealed chunk `index` into `out` (or a new buffer). A final
   * chunk must be short; `isFinal` says whether this chunk is the message's
   * last, so that a full-length final chunk (truncation) is refused.
   */
  openPage(index: number, sealed: Uint8Array, isFinal: boolean, out?: Uint8Array): Uint8Array {
    if (
      sealed.length > SEALED_CHUNK_SIZE ||
      sealed.length < TAG_SIZE ||
      (!isFinal && sealed.length !== SEALED_CHUNK_SIZE) ||
      (isFinal && sealed.length === SEALED_CHUNK_SIZE)
    ) {
      throw new CorruptDataError(`chunk of ${sealed.length} bytes has an impossible length`, { page: index, reason: 'truncated' });
    }
    const target = out ?? Buffer.allocUnsafe(sealed.length - TAG_SIZE);
    this.openInto(index, sealed, target);
    return target.subarray(0, sealed.length - TAG_SIZE);
  }

  /**
   * Opens consecutive chunks starting at `first`. With `toEnd`, the range is
   * the rest of the message and must end with a short final chunk.
   * Returns plaintext bytes written.
   */
  openRange(first: number, sealed: Uint8Array, out: Uint8Array, toEnd: boolean): number {
    const plain = openedSize(sealed.length);
    if (plain < 0 || (toEnd && sealed.length % SEALED_CHUNK_SIZE === 0) || (!toEnd && sealed.length % SEALED_CHUNK_SIZE !== 0)) {
      throw new CorruptDataError(`sealed range of ${sealed.length} bytes has an impossible length`, { reason: 'truncated' });
    }
    const chunks = Math.ceil(sealed.length / SEALED_CHUNK_SIZE);
    if (first + chunks > MAX_CHUNKS) throw new CorruptDataError('message exceeds 2^38 chunks', { reason: 'truncated' });
    return this.openInto(first, sealed, out);
  }

  dispose(): void {
    this.cipher.dispose();
    this.baseNonce.fill(0);
  }

  private openInto(first: number, sealed: Uint8Array, out: Uint8Array): number {
    try {
      return this.cipher.open(this.baseNonce, first, sealed, out);
    } catch (err) {
      if (err instanceof PageAuthFailure) {
        throw new CorruptDataError('chunk failed to authenticate', { page: err.page, reason: 'auth', cause: err });
      }
      throw err;
    }
  }
}

/** A Transform that seals a plaintext stream into a chunked message, in constant memory. */
export function createSealStream(key: Uint8Array, context: Uint8Array, options: SealOptions = {}): Transform {
  const sealer = new MessageSealer(key, context, options);
  let pending: Buffer = Buffer.alloc(0);
  let headerSent = false;
  const sendHeader = (stream: Transform): void => {
    if (!headerSent) {
      stream.push(Buffer.from(sealer.header));
      headerSent = true;
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      try {
        sendHeader(this);
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        const whole = Math.floor(pending.length / CHUNK_SIZE) * CHUNK_SIZE;
        if (whole > 0) {
          const out = Buffer.allocUnsafe(whole + (whole / CHUNK_SIZE) * TAG_SIZE);
          sealer.sealChunks(pending.subarray(0, whole), out);
          this.push(out);
          pending = Buffer.from(pending.subarray(whole));
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        sendHeader(this);
        const out = Buffer.allocUnsafe(sealedSize(pending.length));
        sealer.sealFinal(pending, out);
        this.push(out);
        done();
      } catch (err) {
        done(err as Error);
      } finally {
        sealer.dispose();
      }
    },
    destroy(err, cb) {
      sealer.dispose();
      cb(err);
    },
  });
}

/**
 * A Transform that opens a chunked message stream in constant memory. It
 * emits a chunk's plaintext only after that chunk authenticated, holds back
 * the last sealed chunk until the end (to check that it is short), and fails
 * the stream on the first error.
 */
export function createOpenStream(key: Uint8Array, context: Uint8Array, options: ChunkedOptions = {}): Transform {
  checkKey(key);
  let opener: MessageOpener | undefined;
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  const keyCopy = Buffer.from(key);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      try {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        if (!opener) {
          if (pending.length < MESSAGE_HEADER_SIZE) return done();
          opener = new MessageOpener(keyCopy, context, pending.subarray(0, MESSAGE_HEADER_SIZE), options);
          keyCopy.fill(0);
          pending = Buffer.from(pending.subarray(MESSAGE_HEADER_SIZE));
        }
        // A chunk is known not to be the last only once more bytes follow it.
        const chunks = Math.floor((pending.length - 1) / SEALED_CHUNK_SIZE);
        if (chunks > 0) {
          const bytes = chunks * SEALED_CHUNK_SIZE;
          const out = Buffer.allocUnsafe(chunks * CHUNK_SIZE);
          opener.openRange(index, pending.subarray(0, bytes), out, false);
          index += chunks;
          this.push(out);
          pending = Buffer.from(pending.subarray(bytes));
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        if (!opener) {
          throw new CorruptDataError('sealed message is shorter than its header', { reason: 'truncated' });
        }
        if (pending.length < TAG_SIZE || pending.length >= SEALED_CHUNK_SIZE) {
          throw new CorruptDataError('sealed message is truncated', { page: index, reason: 'truncated' });
        }
        const out = Buffer.allocUnsafe(pending.length - TAG_SIZE);
        opener.openPage(index, pending, true, out);
        this.push(out);
        done();
      } catch (err) {
        done(err as Error);
      } finally {
        opener?.dispose();
      }
    },
    destroy(err, cb) {
      keyCopy.fill(0);
      opener?.dispose();
      cb(err);
    },
  });
}
