/**
 * The chunked-encryption API, exported from the package root as `chunked` so
 * that anyone can check conformance: `chunked.seal(key, context, plaintext)`
 * and `chunked.open(key, context, ciphertext)`, plus streaming
 * (`createSealStream`, `createOpenStream`) and page-level
 * (`MessageSealer`, `MessageOpener`) variants.
 */
export {
  AEAD_NAME,
  CHUNK_SIZE,
  COMMITMENT_SIZE,
  MESSAGE_HEADER_SIZE,
  MessageOpener,
  MessageSealer,
  SALT_SIZE,
  SEALED_CHUNK_SIZE,
  TAG_SIZE,
  chunkCount,
  chunkOffset,
  createOpenStream,
  createSealStream,
  deriveMessageKeys,
  messageLength,
  open,
  seal,
  sealedLength,
} from './chunked.js';
export type { ChunkedOptions, MessageKeys, SealOptions } from './chunked.js';
/** Every core: the same bytes as `seal`/`open`, for large messages (segments). */
export { CryptoPool, closeDefaultPool, defaultPool, openParallel, sealParallel, sharedBuffer } from './pool.js';
export type { ParallelOptions, PageRunOptions, PoolOptions } from './pool.js';
