import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OFFTHREAD_MIN_BYTES, segmentHash } from '../../src/crypto/offthread-hash.js';
import { sharedBuffer } from '../../src/crypto/pool.js';
import { CorruptDataError } from '../../src/errors.js';
import { SegmentKind, readSegment, writeSegment, type SegmentHeader } from '../../src/storage/segment.js';
import { newId } from '../../src/util/ids.js';

/*
 * A large segment's SHA-256 is computed on the hashing worker while the
 * caller seals or opens it (crypto/offthread-hash.ts): the digest must be
 * the one node:crypto gives on the caller's thread, over the same bytes in
 * the same order, and a large file the manifest does not name must still be
 * refused by its hash.
 */

const dir = mkdtempSync(join(tmpdir(), 'vs-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('segment hash off the calling thread', () => {
  it('gives node:crypto digest over updates in shared memory, the caller own buffers and empty ones, in order', async () => {
    const parts = [randomBytes(1000), randomBytes(4 << 20), Buffer.alloc(0), randomBytes(3), randomBytes(1 << 20)];
    const h = segmentHash(OFFTHREAD_MIN_BYTES);
    const shared = sharedBuffer(4 << 20);
    for (const [i, p] of parts.entries()) {
      if (i % 2 === 1) {
        // In place in shared memory, as the segment reader and writer hand them over; reused after each update.
        shared.set(p);
        await h.update(shared.subarray(0, p.length));
        shared.fill(0xee);
      } else {
        await h.update(p);
      }
    }
    const want = createHash('sha256');
    for (const p of parts) want.update(p);
    expect(await h.digest()).toBe(want.digest('hex'));
    await expect(h.digest()).rejects.toThrow();
  });

  it('keeps interleaved hashes apart, and small files hash on the caller thread with the same result', async () => {
    const a = randomBytes(2 << 20);
    const b = randomBytes(2 << 20);
    const ha = segmentHash(OFFTHREAD_MIN_BYTES);
    const hb = segmentHash(OFFTHREAD_MIN_BYTES);
    const small = segmentHash(100);
    await Promise.all([ha.update(a.subarray(0, 1 << 20)), hb.update(b), small.update(a.subarray(0, 1 << 20))]);
    await Promise.all([ha.update(a.subarray(1 << 20)), small.update(a.subarray(1 << 20))]);
    const [da, db, ds] = await Promise.all([ha.digest(), hb.digest(), small.digest()]);
    expect(da).toBe(createHash('sha256').update(a).digest('hex'));
    expect(db).toBe(createHash('sha256').update(b).digest('hex'));
    expect(ds).toBe(da);
  });

  it('a large segment: written with its hash taken on the worker, read back whole, and another authentic copy refused', async () => {
    const storeId = newId();
    const header: SegmentHeader = { kind: SegmentKind.Index, storeId, collectionId: newId(), segmentId: 3, dekVersion: 1 };
    const dek = randomBytes(32);
    const plain = randomBytes(OFFTHREAD_MIN_BYTES + 300_000);
    const first = join(dir, 'first.vseg');
    const second = join(dir, 'second.vseg');
    // One from a buffer, one streamed in parts with the size announced (as a flush streams the graph).
    const written = await writeSegment(first, header, dek, plain);
    async function* parts(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < plain.length; at += 3_000_000) yield plain.subarray(at, at + 3_000_000);
    }
    const other = await writeSegment(second, header, dek, parts(), { batchChunks: 256, sizeHint: plain.length });
    const bytes = await fs.readFile(first);
    expect(written.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(other.sha256).toBe(
      createHash('sha256')
        .update(await fs.readFile(second))
        .digest('hex'),
    );
    expect(other.sha256).not.toBe(written.sha256);
    const expect0 = { storeId, collectionId: header.collectionId, kind: SegmentKind.Index, segmentId: 3 };
    const back = await readSegment(first, { ...expect0, sha256: written.sha256, length: written.length }, () => dek);
    expect(back.equals(plain)).toBe(true);
    // The second file is authentic (same key, same header) but not the one named: only the hash tells them apart.
    await fs.copyFile(second, first);
    const err = await readSegment(first, { ...expect0, sha256: written.sha256 }, () => dek).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as CorruptDataError).reason).toBe('hash');
  });
});
