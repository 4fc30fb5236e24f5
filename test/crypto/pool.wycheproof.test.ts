import { createHash } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../src/crypto/chunked.js';
import { nodeEngine } from '../../src/crypto/node-engine.js';
import { CryptoPool, openParallel, sealParallel } from '../../src/crypto/pool.js';
import { VectorsealError } from '../../src/errors.js';
import { hex, loadWycheproof } from '../helpers/vectors.js';

/**
 * Every Cobblestone-256 Wycheproof vector through the worker pool, with a
 * threshold low enough that multi-chunk messages are split across threads:
 * valid ones open to the right bytes and reseal identically, invalid ones are
 * refused with the same typed error class as chunked.open.
 */

interface ChunkedTest {
  tcId: number;
  comment: string;
  key: string;
  ctx: string;
  ct: string;
  msgLength?: number;
  msgSha512?: string;
  result: 'valid' | 'invalid';
}

const file = loadWycheproof<{ tests: ChunkedTest[] }>('c2sp_chunked_encryption_aes_256_gcm_test.json');
const tests = file.testGroups.flatMap((g) => g.tests);
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex');

const pools = [
  new CryptoPool({ minParallelBytes: 2 }),
  new CryptoPool({ minParallelBytes: 2, workers: 2, forceNodeWorkers: true, engine: nodeEngine }),
];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe.each(pools.map((pool) => ({ pool, name: `${pool.workerEngine} workers` })))(
  'Wycheproof Cobblestone-256 through the pool ($name)',
  ({ pool }) => {
    it.each(tests)('tcId $tcId: $comment', async (t) => {
      const key = hex(t.key);
      const ctx = hex(t.ctx);
      const ct = inflateSync(hex(t.ct));
      if (t.result === 'valid') {
        const msg = await openParallel(key, ctx, ct, { pool });
        expect(msg.length).toBe(t.msgLength);
        expect(sha512(msg)).toBe(t.msgSha512);
        const again = await sealParallel(key, ctx, msg, { pool, salt: ct.subarray(0, 24) });
        expect(Buffer.from(again).equals(ct)).toBe(true);
      } else {
        let expected: unknown;
        try {
          open(key, ctx, ct, { engine: nodeEngine });
        } catch (err) {
          expected = err;
        }
        expect(expected).toBeInstanceOf(VectorsealError);
        const got = await openParallel(key, ctx, ct, { pool }).catch((err: unknown) => err);
        expect(got).toBeInstanceOf(VectorsealError);
        expect((got as VectorsealError).code).toBe((expected as VectorsealError).code);
        expect((got as { page?: number }).page).toBe((expected as { page?: number }).page);
      }
    });
  },
);
