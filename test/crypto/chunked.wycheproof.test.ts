import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  MESSAGE_HEADER_SIZE,
  MessageOpener,
  MessageSealer,
  chunkCount,
  chunkOffset,
  createOpenStream,
  messageLength,
  open,
  seal,
} from '../../src/crypto/chunked.js';
import { SEALED_CHUNK_SIZE } from '../../src/crypto/engine.js';
import { availableEngines } from '../helpers/engines.js';
import { VectorsealError } from '../../src/errors.js';
import { hex, loadWycheproof } from '../helpers/vectors.js';

interface ChunkedTest {
  tcId: number;
  comment: string;
  key: string;
  ctx: string;
  ct: string;
  aeadKey?: string;
  baseNonce?: string;
  msgLength?: number;
  msgSha512?: string;
  result: 'valid' | 'invalid';
  flags: string[];
}

const file = loadWycheproof<{ tests: ChunkedTest[] }>('c2sp_chunked_encryption_aes_256_gcm_test.json');
const tests = file.testGroups.flatMap((g) => g.tests);
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex');

/** Opens every page through the random-access interface, last page first (length authentication). */
function openByPages(key: Buffer, ctx: Buffer, ct: Buffer, engine: ReturnType<typeof availableEngines>[number]): Buffer {
  if (ct.length < MESSAGE_HEADER_SIZE) throw new Error('short');
  const opener = new MessageOpener(key, ctx, ct.subarray(0, MESSAGE_HEADER_SIZE), { engine });
  try {
    const length = messageLength(ct.length);
    const pages = chunkCount(length);
    const out: Buffer[] = new Array(pages);
    for (let i = pages - 1; i >= 0; i--) {
      const sealed = ct.subarray(chunkOffset(i), Math.min(ct.length, chunkOffset(i) + SEALED_CHUNK_SIZE));
      out[i] = Buffer.from(opener.openPage(i, sealed, i === pages - 1));
    }
    return Buffer.concat(out);
  } finally {
    opener.dispose();
  }
}

describe.each(availableEngines())('Wycheproof Cobblestone-256 ($name engine)', (engine) => {
  it('has all the vectors', () => {
    expect(tests.length).toBe(file.numberOfTests);
  });

  it.each(tests)('tcId $tcId: $comment', async (t) => {
    const key = hex(t.key);
    const ctx = hex(t.ctx);
    const ct = inflateSync(hex(t.ct));
    if (t.result === 'valid') {
      const msg = open(key, ctx, ct, { engine });
      expect(msg.length).toBe(t.msgLength);
      expect(sha512(msg)).toBe(t.msgSha512);
      expect(sha512(openByPages(key, ctx, ct, engine))).toBe(t.msgSha512);
      // Streaming, in small pieces so every boundary case is crossed.
      const parts: Buffer[] = [];
      await pipeline(Readable.from(splitEvery(ct, 7001)), createOpenStream(key, ctx, { engine }), async function* (src) {
        for await (const p of src) parts.push(p as Buffer);
      });
      expect(sha512(Buffer.concat(parts))).toBe(t.msgSha512);
      // Deterministic re-encryption with the vector's salt reproduces it exactly.
      const again = seal(key, ctx, msg, { engine, salt: ct.subarray(0, 24) });
      expect(Buffer.from(again).equals(ct)).toBe(true);
      // And a sealer fed chunk by chunk gives the same bytes.
      const sealer = new MessageSealer(key, ctx, { engine, salt: ct.subarray(0, 24) });
      expect(Buffer.from(sealer.header).equals(ct.subarray(0, MESSAGE_HEADER_SIZE))).toBe(true);
      sealer.dispose();
    } else {
      expect(() => open(key, ctx, ct, { engine })).toThrow(VectorsealError);
      expect(() => openByPages(key, ctx, ct, engine)).toThrow();
      // Streaming must fail, and must never emit more than the valid prefix.
      const parts: Buffer[] = [];
      await expect(
        (async () =>
          pipeline(Readable.from(splitEvery(ct, 5000)), createOpenStream(key, ctx, { engine }), async function* (src) {
            for await (const p of src) parts.push(p as Buffer);
          }))(),
      ).rejects.toThrow();
      const emitted = Buffer.concat(parts);
      expect(emitted.length).toBeLessThanOrEqual(t.msgLength ?? 0);
      if (t.msgLength !== undefined && t.msgSha512 !== undefined && emitted.length === t.msgLength) {
        expect(sha512(emitted)).toBe(t.msgSha512);
      }
    }
  });
});

function* splitEvery(buf: Buffer, n: number): Generator<Buffer> {
  if (buf.length === 0) yield buf;
  for (let i = 0; i < buf.length; i += n) yield buf.subarray(i, i + n);
}
