import { createHmac } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

const SHA512_BYTES = 64;

/**
 * HKDF-Expand (RFC 5869 section 2.3) with HMAC-SHA-512, without the Extract
 * step: the input key is already uniformly random (a DEK), which is what C2SP
 * chunked encryption specifies.
 */
export function hkdfExpandSha512(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 255 * SHA512_BYTES) {
    throw new InvalidArgumentError(`"length" expected an integer in 1..${255 * SHA512_BYTES}, got ${length}`);
  }
  const out = Buffer.alloc(length);
  let previous: Buffer = Buffer.alloc(0);
  let written = 0;
  for (let counter = 1; written < length; counter++) {
    const hmac = createHmac('sha512', prk);
    hmac.update(previous);
    hmac.update(info);
    hmac.update(Uint8Array.of(counter));
    previous = hmac.digest();
    written += previous.copy(out, written);
  }
  previous.fill(0);
  return out;
}
