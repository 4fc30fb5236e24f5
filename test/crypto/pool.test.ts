import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { open, seal } from '../../src/crypto/chunked.js';
import { CHUNK_SIZE, PageAuthFailure, SEALED_CHUNK_SIZE, sealedSize } from '../../src/crypto/engine.js';
import { nodeEngine } from '../../src/crypto/node-engine.js';
import { CryptoPool, closeDefaultPool, openParallel, sealParallel, sharedBuffer } from '../../src/crypto/pool.js';
import { CorruptDataError } from '../../src/errors.js';

/** Seals `count` independent pages of `pageSize` bytes one by one with node:crypto: the reference for page runs. */
function referencePages(key: Uint8Array, base: Uint8Array, counter: number, pt: Uint8Array, pageSize: number): Buffer {
  const cipher = nodeEngine.cipher(key);
  const parts: Buffer[] = [];
  const perPage = Math.ceil(pageSize / CHUNK_SIZE);
  for (let p = 0, at = 0; at < pt.length; p++, at += pageSize) {
    const page = pt.subarray(at, Math.min(pt.length, at + pageSize));
    const out = Buffer.alloc(sealedSize(page.length));
    cipher.seal(base, counter + p * perPage, page, out);
    parts.push(out);
  }
  cipher.dispose();
  return Buffer.concat(parts);
}

const pools = [
  new CryptoPool({ minParallelBytes: 64 * 1024 }),
  new CryptoPool({ minParallelBytes: 64 * 1024, workers: 3, forceNodeWorkers: true, engine: nodeEngine }),
];

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await closeDefaultPool();
});

describe.each(pools.map((pool) => ({ pool, name: `${pool.workerEngine} workers ×${pool.threads - 1}` })))(
  'CryptoPool ($name)',
  ({ pool }) => {
    it.each([0, 1, 100, 64 * 1024 - 1, 64 * 1024, 300_000, 1024 * 1024 + 5, 3 * 1024 * 1024])(
      'sealParallel of %i bytes equals chunked.seal and opens both ways',
      async (length) => {
        const key = randomBytes(32);
        const ctx = randomBytes(20);
        const salt = randomBytes(24);
        const msg = randomBytes(length);
        const expected = Buffer.from(seal(key, ctx, msg, { salt, engine: nodeEngine }));
        const got = await sealParallel(key, ctx, msg, { salt, pool });
        expect(Buffer.from(got).equals(expected)).toBe(true);
        expect(Buffer.from(await openParallel(key, ctx, expected, { pool })).equals(msg)).toBe(true);
        expect(Buffer.from(open(key, ctx, got, { engine: nodeEngine })).equals(msg)).toBe(true);
      },
    );

    it('works on shared buffers without copies, and on plain ones', async () => {
      const key = randomBytes(32);
      const base = randomBytes(12);
      const counter = 2 ** 32 - 5;
      const plain = randomBytes(40 * CHUNK_SIZE);
      const expected = referencePages(key, base, counter, plain, CHUNK_SIZE);
      const sharedIn = sharedBuffer(plain.length);
      sharedIn.set(plain);
      for (const [input, out] of [
        [sharedIn, sharedBuffer(expected.length)],
        [plain, Buffer.alloc(expected.length)],
        [sharedIn, Buffer.alloc(expected.length)],
      ] as const) {
        expect(await pool.seal(key, base, counter, input, out)).toBe(expected.length);
        expect(Buffer.from(out).equals(expected)).toBe(true);
        const back = Buffer.alloc(plain.length);
        expect(await pool.open(key, base, counter, out, back)).toBe(plain.length);
        expect(back.equals(plain)).toBe(true);
      }
    });

    it.each([4096, 5000, 65536])('independent pages of %i bytes', async (pageSize) => {
      const key = randomBytes(32);
      const base = randomBytes(12);
      const plain = randomBytes(pageSize * 37 + 123);
      const expected = referencePages(key, base, 9, plain, pageSize);
      const out = sharedBuffer(expected.length);
      expect(await pool.seal(key, base, 9, plain, out, { pageSize })).toBe(expected.length);
      expect(out.equals(expected)).toBe(true);
      const back = sharedBuffer(plain.length);
      expect(await pool.open(key, base, 9, out, back, { pageSize })).toBe(plain.length);
      expect(back.equals(plain)).toBe(true);
    });

    it('names the lowest damaged page, whichever thread found it', async () => {
      const key = randomBytes(32);
      const base = randomBytes(12);
      const plain = randomBytes(64 * CHUNK_SIZE);
      const sealed = referencePages(key, base, 1000, plain, CHUNK_SIZE);
      for (const pages of [[50], [63], [0], [40, 20], [33, 60]]) {
        const bad = Buffer.from(sealed);
        for (const p of pages) bad[p * SEALED_CHUNK_SIZE + 77]! ^= 0x80;
        await expect(pool.open(key, base, 1000, bad, Buffer.alloc(plain.length))).rejects.toEqual(
          new PageAuthFailure(1000 + Math.min(...pages)),
        );
      }
    });

    it('openParallel reports a damaged page as CorruptDataError, and a wrong context as a commitment failure', async () => {
      const key = randomBytes(32);
      const msg = randomBytes(50 * CHUNK_SIZE + 3);
      const ct = Buffer.from(seal(key, Buffer.from('ctx'), msg));
      const bad = Buffer.from(ct);
      bad[56 + 41 * SEALED_CHUNK_SIZE + 5]! ^= 1;
      const err = await openParallel(key, Buffer.from('ctx'), bad, { pool }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptDataError);
      expect((err as CorruptDataError).page).toBe(41);
      expect((err as CorruptDataError).reason).toBe('auth');
      const wrong = await openParallel(key, Buffer.from('other'), ct, { pool }).catch((e: unknown) => e);
      expect((wrong as CorruptDataError).reason).toBe('commitment');
      const cut = await openParallel(key, Buffer.from('ctx'), ct.subarray(0, 56 + 50 * SEALED_CHUNK_SIZE), { pool }).catch(
        (e: unknown) => e,
      );
      expect((cut as CorruptDataError).reason).toBe('truncated');
    });

    it('runs concurrent calls', async () => {
      const key = randomBytes(32);
      const ctx = Buffer.from('c');
      const msgs = Array.from({ length: 6 }, (_, i) => randomBytes(200_000 + i * 50_000));
      const sealed = await Promise.all(msgs.map((m) => sealParallel(key, ctx, m, { pool })));
      const opened = await Promise.all(sealed.map((s) => openParallel(key, ctx, s, { pool })));
      opened.forEach((o, i) => expect(Buffer.from(o).equals(msgs[i] as Buffer)).toBe(true));
    });
  },
);

describe('pool lifecycle', () => {
  it('a closed pool refuses work; the default pool uses every core', async () => {
    const pool = new CryptoPool({ minParallelBytes: 1 });
    await pool.seal(randomBytes(32), randomBytes(12), 0, randomBytes(4 * CHUNK_SIZE), Buffer.alloc(4 * SEALED_CHUNK_SIZE));
    await pool.close();
    await expect(pool.seal(randomBytes(32), randomBytes(12), 0, Buffer.alloc(1), Buffer.alloc(17))).rejects.toThrow(/closed/);
    const msg = randomBytes(2 * 1024 * 1024);
    const key = randomBytes(32);
    expect(Buffer.from(await openParallel(key, Buffer.alloc(0), await sealParallel(key, Buffer.alloc(0), msg))).equals(msg)).toBe(true);
  });

  it('workers do not keep the process alive', async () => {
    // A plain Node child cannot import .ts: this runs against the compiled package (npm test builds it first).
    const dist = fileURLToPath(new URL('../../dist/crypto/pool.js', import.meta.url));
    expect(existsSync(dist), 'the compiled package is missing: run `npm run build`').toBe(true);
    const code =
      `import(${JSON.stringify(dist)}).then(async (m) => { await m.sealParallel(Buffer.alloc(32, 1), ` +
      `Buffer.alloc(0), Buffer.alloc(3 << 20)); console.log('sealed'); })`;
    const run = spawnSync(process.execPath, ['-e', code], { timeout: 20_000, encoding: 'utf8' });
    expect(run.stdout).toContain('sealed');
    expect(run.status).toBe(0);
  });
});
