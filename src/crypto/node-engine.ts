import { createCipheriv, createDecipheriv } from 'node:crypto';
import {
  CHUNK_SIZE,
  NONCE_SIZE,
  PageAuthFailure,
  SEALED_CHUNK_SIZE,
  TAG_SIZE,
  chunkNonce,
  type ChunkCipher,
  type ChunkEngine,
} from './engine.js';

/**
 * The pure `node:crypto` engine: one `createCipheriv` per chunk. Slower than
 * the native engine (a key schedule and fresh buffers per page) but always
 * available, and byte-for-byte identical.
 */
export const nodeEngine: ChunkEngine = {
  name: 'node',
  cipher(key: Uint8Array): ChunkCipher {
    return new NodeChunkCipher(key);
  },
};

class NodeChunkCipher implements ChunkCipher {
  private key: Buffer;
  private readonly nonce = Buffer.alloc(NONCE_SIZE);

  constructor(key: Uint8Array) {
    this.key = Buffer.from(key);
  }

  seal(baseNonce: Uint8Array, counter: number, plaintext: Uint8Array, out: Uint8Array): number {
    let inOff = 0;
    let outOff = 0;
    let index = counter;
    do {
      const n = Math.min(CHUNK_SIZE, plaintext.length - inOff);
      const cipher = createCipheriv('aes-256-gcm', this.key, chunkNonce(baseNonce, index, this.nonce));
      const body = cipher.update(plaintext.subarray(inOff, inOff + n));
      cipher.final();
      out.set(body, outOff);
      out.set(cipher.getAuthTag(), outOff + n);
      inOff += n;
      outOff += n + TAG_SIZE;
      index++;
    } while (inOff < plaintext.length);
    return outOff;
  }

  open(baseNonce: Uint8Array, counter: number, ciphertext: Uint8Array, out: Uint8Array): number {
    let inOff = 0;
    let outOff = 0;
    let index = counter;
    do {
      const n = Math.min(SEALED_CHUNK_SIZE, ciphertext.length - inOff);
      if (n < TAG_SIZE) throw new PageAuthFailure(index);
      const decipher = createDecipheriv('aes-256-gcm', this.key, chunkNonce(baseNonce, index, this.nonce));
      decipher.setAuthTag(ciphertext.subarray(inOff + n - TAG_SIZE, inOff + n));
      const body = decipher.update(ciphertext.subarray(inOff, inOff + n - TAG_SIZE));
      try {
        decipher.final();
      } catch {
        body.fill(0);
        throw new PageAuthFailure(index);
      }
      out.set(body, outOff);
      body.fill(0);
      inOff += n;
      outOff += n - TAG_SIZE;
      index++;
    } while (inOff < ciphertext.length);
    return outOff;
  }

  dispose(): void {
    this.key.fill(0);
    this.key = Buffer.alloc(0);
  }
}
