import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../../src/crypto/chunked.js';
import {
  CHUNK_SIZE,
  MAX_CHUNKS,
  PageAuthFailure,
  SEALED_CHUNK_SIZE,
  openedSize,
  sealedSize,
  type ChunkEngine,
} from '../../src/crypto/engine.js';
import { selectEngine } from '../../src/crypto/engines.js';
import { loadNativeEngine } from '../../src/crypto/native-engine.js';
import { nodeEngine } from '../../src/crypto/node-engine.js';
import { ClosedError } from '../../src/errors.js';
import { availableEngines } from '../helpers/engines.js';

/**
 * The native engine and the node:crypto engine must be interchangeable: same
 * bytes for every length class and counter, each opens the other's output,
 * and both name the same page when one is damaged.
 */

const native = loadNativeEngine();
const LENGTHS = [0, 1, 15, 16, 17, 4096, 16383, 16384, 16385, 32767, 32768, 32769, 49152, 65536 + 100];
const COUNTERS = [0, 1, 254, 255, 256, 257, 65534, 65535, 65536, 2 ** 24 - 1, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 38 - 8];

function sealWith(engine: ChunkEngine, key: Uint8Array, base: Uint8Array, counter: number, pt: Uint8Array): Buffer {
  const cipher = engine.cipher(key);
  try {
    const out = Buffer.alloc(sealedSize(pt.length));
    expect(cipher.seal(base, counter, pt, out)).toBe(out.length);
    return out;
  } finally {
    cipher.dispose();
  }
}

function openWith(engine: ChunkEngine, key: Uint8Array, base: Uint8Array, counter: number, ct: Uint8Array): Buffer {
  const cipher = engine.cipher(key);
  try {
    const out = Buffer.alloc(Math.max(0, openedSize(ct.length)));
    expect(cipher.open(base, counter, ct, out)).toBe(out.length);
    return out;
  } finally {
    cipher.dispose();
  }
}

function failingPage(engine: ChunkEngine, key: Uint8Array, base: Uint8Array, counter: number, ct: Uint8Array): number | undefined {
  const cipher = engine.cipher(key);
  try {
    cipher.open(base, counter, ct, Buffer.alloc(ct.length));
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(PageAuthFailure);
    return (err as PageAuthFailure).page;
  } finally {
    cipher.dispose();
  }
}

describe.runIf(native)('native vs node:crypto page engines', () => {
  const nat = native as ChunkEngine;

  it('is what selectEngine("native") and auto pick', () => {
    expect(selectEngine('native').name).toBe('native');
    expect(selectEngine('auto').name).toBe('native');
    expect(selectEngine('node').name).toBe('node');
  });

  it.each(LENGTHS)('length %i: identical bytes at every counter class, and each opens the other', (length) => {
    for (const counter of COUNTERS) {
      const key = randomBytes(32);
      const base = randomBytes(12);
      const pt = randomBytes(length);
      const a = sealWith(nat, key, base, counter, pt);
      const b = sealWith(nodeEngine, key, base, counter, pt);
      expect(a.equals(b)).toBe(true);
      expect(openWith(nat, key, base, counter, b).equals(pt)).toBe(true);
      expect(openWith(nodeEngine, key, base, counter, a).equals(pt)).toBe(true);
    }
  });

  it('random multi-chunk lengths and counters', () => {
    for (let i = 0; i < 40; i++) {
      const length = Math.floor(Math.random() * 8 * CHUNK_SIZE);
      const counter = Math.floor(Math.random() * 2 ** 37);
      const key = randomBytes(32);
      const base = randomBytes(12);
      const pt = randomBytes(length);
      const a = sealWith(nat, key, base, counter, pt);
      expect(a.equals(sealWith(nodeEngine, key, base, counter, pt))).toBe(true);
      expect(openWith(nodeEngine, key, base, counter, a).equals(pt)).toBe(true);
    }
  });

  it('writes into a caller buffer at an offset, leaving the rest untouched', () => {
    const key = randomBytes(32);
    const base = randomBytes(12);
    const pt = randomBytes(20000);
    const backing = Buffer.alloc(sealedSize(pt.length) + 64, 0xee);
    const view = backing.subarray(32, 32 + sealedSize(pt.length));
    const cipher = nat.cipher(key);
    cipher.seal(base, 7, pt.subarray(0), view);
    cipher.dispose();
    expect(backing.subarray(0, 32).every((b) => b === 0xee)).toBe(true);
    expect(backing.subarray(32 + view.length).every((b) => b === 0xee)).toBe(true);
    expect(Buffer.from(view).equals(sealWith(nodeEngine, key, base, 7, pt))).toBe(true);
  });

  it('refuses an output buffer that is too small, instead of overrunning it', () => {
    const cipher = nat.cipher(randomBytes(32));
    try {
      expect(() => cipher.seal(randomBytes(12), 0, randomBytes(100), Buffer.alloc(115))).toThrow(RangeError);
      expect(() => cipher.open(randomBytes(12), 0, randomBytes(SEALED_CHUNK_SIZE + 20), Buffer.alloc(CHUNK_SIZE))).toThrow(RangeError);
      expect(() => cipher.seal(randomBytes(11), 0, randomBytes(1), Buffer.alloc(17))).toThrow(RangeError);
      expect(() => cipher.seal(randomBytes(12), MAX_CHUNKS, randomBytes(1), Buffer.alloc(17))).toThrow(RangeError);
      expect(() => cipher.seal(randomBytes(12), MAX_CHUNKS - 1, randomBytes(CHUNK_SIZE + 1), Buffer.alloc(CHUNK_SIZE + 33))).toThrow(
        RangeError,
      );
      expect(() => cipher.seal(randomBytes(12), 1.5, randomBytes(1), Buffer.alloc(17))).toThrow(RangeError);
    } finally {
      cipher.dispose();
    }
  });

  it('dispose is idempotent and the cipher is unusable afterwards', () => {
    const cipher = nat.cipher(randomBytes(32));
    cipher.dispose();
    cipher.dispose();
    expect(() => cipher.seal(randomBytes(12), 0, Buffer.alloc(1), Buffer.alloc(17))).toThrow(ClosedError);
  });

  it('rejects keys of the wrong size', () => {
    expect(() => nat.cipher(randomBytes(16))).toThrow(/length 32, got length=16/);
  });
});

describe.each(availableEngines())('$name engine: damaged pages', (engine) => {
  const key = randomBytes(32);
  const base = randomBytes(12);
  const pt = randomBytes(5 * CHUNK_SIZE + 1000);
  const counter = 2 ** 32 - 2;
  const sealed = sealWith(engine, key, base, counter, pt);

  it.each([0, 1, 3, 5])('a flipped byte in chunk %i names that page', (chunk) => {
    for (const at of [0, 100, SEALED_CHUNK_SIZE - 1]) {
      const bad = Buffer.from(sealed);
      const pos = Math.min(bad.length - 1, chunk * SEALED_CHUNK_SIZE + at);
      bad[pos] = (bad[pos] ?? 0) ^ 0x01;
      expect(failingPage(engine, key, base, counter, bad)).toBe(counter + chunk);
    }
  });

  it('swapped chunks fail at the first moved one', () => {
    const bad = Buffer.from(sealed);
    sealed.copy(bad, SEALED_CHUNK_SIZE, 2 * SEALED_CHUNK_SIZE, 3 * SEALED_CHUNK_SIZE);
    sealed.copy(bad, 2 * SEALED_CHUNK_SIZE, SEALED_CHUNK_SIZE, 2 * SEALED_CHUNK_SIZE);
    expect(failingPage(engine, key, base, counter, bad)).toBe(counter + 1);
  });

  it('a wrong counter fails at the first page; a trailing stub shorter than a tag fails at its page', () => {
    expect(failingPage(engine, key, base, counter + 1, sealed)).toBe(counter + 1);
    const full = sealed.subarray(0, 2 * SEALED_CHUNK_SIZE + 7);
    expect(failingPage(engine, key, base, counter, full)).toBe(counter + 2);
    expect(failingPage(engine, key, base, counter, Buffer.alloc(0))).toBe(counter);
  });
});

describe('property: round trips and engine agreement', () => {
  it('chunk runs', () => {
    const engines = availableEngines();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 3 * CHUNK_SIZE + 50 }),
        fc.integer({ min: 0, max: MAX_CHUNKS - 8 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        (pt, counter, key, base) => {
          const outs = engines.map((e) => sealWith(e, key, base, counter, pt));
          for (const o of outs) expect(o.equals(outs[0] as Buffer)).toBe(true);
          for (const e of engines) expect(openWith(e, key, base, counter, outs[0] as Buffer).equals(pt)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('whole messages, sealed by one engine and opened by another', () => {
    const engines = availableEngines();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 2 * CHUNK_SIZE + 10 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.nat({ max: engines.length - 1 }),
        fc.nat({ max: engines.length - 1 }),
        (msg, ctx, i, j) => {
          const key = randomBytes(32);
          const ct = seal(key, ctx, msg, { engine: engines[i]! });
          expect(Buffer.from(open(key, ctx, ct, { engine: engines[j]! })).equals(msg)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});
