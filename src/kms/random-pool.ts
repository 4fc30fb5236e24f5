import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
/** Requests larger than this bypass the pool (they are rare: GenerateRandom, large data keys). */
const MAX_POOLED = 256;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * `n` bytes from the operating system's CSPRNG, drawn from a pool refilled
 * 4 KiB at a time. One randomFillSync call then serves a hundred data keys and
 * nonces instead of one: the per-call cost (not the bytes) is what the key
 * service's hot path paid for. Every byte is handed out once and zeroed in the
 * pool as it leaves, so the pool never holds a value already in use.
 */
export function poolRandomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  poolRandomFill(out, 0, n);
  return out;
}

/** Fills `n` bytes of `target` from `at` with fresh random bytes, as poolRandomBytes does, into a buffer the caller already has. */
export function poolRandomFill(target: Uint8Array, at: number, n: number): void {
  if (n > MAX_POOLED) {
    randomFillSync(target, at, n);
    return;
  }
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  pool.copy(target, at, offset, offset + n);
  pool.fill(0, offset, offset + n);
  offset += n;
}
