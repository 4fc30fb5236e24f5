import { randomBytes } from 'node:crypto';
import { promises as fs, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_HEADER_SIZE, SEALED_CHUNK_SIZE } from '../../src/crypto/chunked.js';
import { CorruptDataError, UnsupportedVersionError } from '../../src/errors.js';
import {
  SEGMENT_HEADER_SIZE,
  SegmentKind,
  SegmentReader,
  readSegment,
  writeSegment,
  type SegmentHeader,
} from '../../src/storage/segment.js';
import { newId } from '../../src/util/ids.js';

const storeId = newId();
const collectionA = newId();
const collectionB = newId();
const dekA = randomBytes(32);
const dekB = randomBytes(32);
const keyForA = (): Uint8Array => dekA;
const expectA = (segmentId: number) => ({ storeId, collectionId: collectionA, kind: SegmentKind.Vectors, segmentId });
const CHUNKS_START = SEGMENT_HEADER_SIZE + MESSAGE_HEADER_SIZE;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vs-seg-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function header(collectionId: string, segmentId: number): SegmentHeader {
  return { kind: SegmentKind.Vectors, storeId, collectionId, segmentId, dekVersion: 1 };
}

/** Writes a segment of `pages` full pages plus a short tail; returns its path and plaintext. */
async function makeSegment(name: string, pages = 4, tail = 1000): Promise<{ path: string; plain: Buffer }> {
  const plain = randomBytes(pages * 16384 + tail);
  const path = join(dir, name);
  await writeSegment(path, header(collectionA, 7), dekA, plain);
  return { path, plain };
}

async function expectCorrupt(promise: Promise<unknown>, file: string, reason?: string, page?: number): Promise<CorruptDataError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptDataError);
  const c = err as CorruptDataError;
  expect(c.code).toBe('VS_CORRUPT_DATA');
  expect(c.file).toBe(file);
  if (reason !== undefined) expect(c.reason).toBe(reason);
  if (page !== undefined) expect(c.page).toBe(page);
  return c;
}

describe('segment files', () => {
  it('round-trips whole, by page and from a stream of parts', async () => {
    const { path, plain } = await makeSegment('rt.vseg');
    expect((await readSegment(path, expectA(7), keyForA)).equals(plain)).toBe(true);
    const reader = await SegmentReader.open(path, expectA(7), keyForA);
    expect(reader.pageCount).toBe(5);
    expect(Buffer.from(await reader.readPage(3)).equals(plain.subarray(3 * 16384, 4 * 16384))).toBe(true);
    expect(Buffer.from(await reader.readPage(4)).equals(plain.subarray(4 * 16384))).toBe(true);
    await reader.close();
    const parts = [plain.subarray(0, 5), plain.subarray(5, 40000), plain.subarray(40000)];
    const p2 = join(dir, 'rt2.vseg');
    const result = await writeSegment(p2, header(collectionA, 7), dekA, parts);
    expect(result.length).toBe((await fs.stat(p2)).size);
    expect((await readSegment(p2, { ...expectA(7), sha256: result.sha256, length: result.length }, keyForA)).equals(plain)).toBe(true);
  });

  it('round-trips empty and exact-multiple plaintexts', async () => {
    for (const size of [0, 16384, 32768]) {
      const p = join(dir, `size-${size}.vseg`);
      const plain = randomBytes(size);
      await writeSegment(p, header(collectionA, 1), dekA, plain);
      expect((await readSegment(p, expectA(1), keyForA)).equals(plain)).toBe(true);
    }
  });

  it('names a changed header byte', async () => {
    const { path } = await makeSegment('hdr.vseg');
    const bytes = await fs.readFile(path);
    // Segment id lives at offset 40: change it, and the commitment (context = header) fails.
    bytes[47] = (bytes[47] ?? 0) ^ 1;
    await fs.writeFile(path, bytes);
    await expectCorrupt(readSegment(path, { storeId, collectionId: collectionA }, keyForA), path, 'commitment');
    bytes[4] = 9; // format version
    await fs.writeFile(path, bytes);
    await expect(readSegment(path, expectA(7), keyForA)).rejects.toBeInstanceOf(UnsupportedVersionError);
    bytes.write('XSEG', 0, 'latin1');
    await fs.writeFile(path, bytes);
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path, 'header');
  });

  it('names the page of a changed chunk byte, whole and by page', async () => {
    const { path } = await makeSegment('flip.vseg');
    const bytes = await fs.readFile(path);
    const at = CHUNKS_START + 2 * SEALED_CHUNK_SIZE + 100;
    bytes[at] = (bytes[at] ?? 0) ^ 0x80;
    await fs.writeFile(path, bytes);
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path, 'auth', 2);
    const reader = await SegmentReader.open(path, expectA(7), keyForA);
    await expect(reader.readPage(1)).resolves.toBeDefined();
    await expectCorrupt(reader.readPage(2), path, 'auth', 2);
    await reader.close();
  });

  it('detects two chunks swapped and a chunk duplicated', async () => {
    const { path } = await makeSegment('swap.vseg');
    const bytes = await fs.readFile(path);
    const chunk = (i: number): Buffer =>
      Buffer.from(bytes.subarray(CHUNKS_START + i * SEALED_CHUNK_SIZE, CHUNKS_START + (i + 1) * SEALED_CHUNK_SIZE));
    const swapped = Buffer.from(bytes);
    chunk(2).copy(swapped, CHUNKS_START + 1 * SEALED_CHUNK_SIZE);
    chunk(1).copy(swapped, CHUNKS_START + 2 * SEALED_CHUNK_SIZE);
    await fs.writeFile(path, swapped);
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path, 'auth', 1);
    const duplicated = Buffer.from(bytes);
    chunk(0).copy(duplicated, CHUNKS_START + 1 * SEALED_CHUNK_SIZE);
    await fs.writeFile(path, duplicated);
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path, 'auth', 1);
  });

  it('detects truncation at every chunk boundary and inside chunks', async () => {
    const { path } = await makeSegment('trunc.vseg', 3, 500);
    const bytes = await fs.readFile(path);
    const cuts = new Set<number>();
    for (let i = 0; i <= 3; i++) {
      const boundary = CHUNKS_START + i * SEALED_CHUNK_SIZE;
      cuts.add(boundary);
      cuts.add(boundary + 1);
      cuts.add(boundary + 8000);
      cuts.add(boundary - 1);
    }
    cuts.add(bytes.length - 1);
    cuts.add(SEGMENT_HEADER_SIZE + 10);
    cuts.add(10);
    for (const cut of [...cuts].filter((c) => c > 0 && c < bytes.length)) {
      await fs.writeFile(path, bytes.subarray(0, cut));
      const err = await readSegment(path, expectA(7), keyForA).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `cut at ${cut}`).toBeInstanceOf(CorruptDataError);
      expect((err as CorruptDataError).file).toBe(path);
    }
  });

  it('detects trailing bytes, and a length that differs from the manifest', async () => {
    const { path } = await makeSegment('trail.vseg');
    const bytes = await fs.readFile(path);
    await fs.writeFile(path, Buffer.concat([bytes, Buffer.alloc(20)]));
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path);
    await fs.writeFile(path, Buffer.concat([bytes, bytes.subarray(CHUNKS_START, CHUNKS_START + SEALED_CHUNK_SIZE)]));
    await expectCorrupt(readSegment(path, expectA(7), keyForA), path);
    await expectCorrupt(readSegment(path, { ...expectA(7), length: bytes.length }, keyForA), path, 'extended');
  });

  it('refuses a segment copied in from another collection', async () => {
    const foreign = join(dir, 'foreign.vseg');
    await writeSegment(foreign, header(collectionB, 7), dekB, randomBytes(5000));
    // As found: the header names the other collection.
    await expectCorrupt(readSegment(foreign, expectA(7), keyForA), foreign, 'foreign');
    // Header rewritten to claim collection A: the commitment under A's key fails.
    const bytes = await fs.readFile(foreign);
    Buffer.from(collectionA.replace(/-/g, ''), 'hex').copy(bytes, 24);
    await fs.writeFile(foreign, bytes);
    await expectCorrupt(readSegment(foreign, expectA(7), keyForA), foreign, 'commitment');
  });

  it('refuses a segment swapped for another segment of the same collection, or an older version of itself', async () => {
    const first = join(dir, 'v1.vseg');
    const written = await writeSegment(first, header(collectionA, 7), dekA, randomBytes(3000));
    const other = join(dir, 'other.vseg');
    await writeSegment(other, header(collectionA, 8), dekA, randomBytes(3000));
    await expectCorrupt(readSegment(other, expectA(7), keyForA), other, 'swapped');
    // Same id, rewritten: the manifest's hash tells the versions apart.
    const second = join(dir, 'v2.vseg');
    await writeSegment(second, header(collectionA, 7), dekA, randomBytes(3000));
    await expectCorrupt(readSegment(second, { ...expectA(7), sha256: written.sha256 }, keyForA), second, 'hash');
  });

  it('a pinned seal (salt and commitment) tells an older version of the same id apart at open, before any page is read', async () => {
    const first = join(dir, 'sealed-v1.vseg');
    const plain = randomBytes(3 * 16384 + 100);
    const written = await writeSegment(first, header(collectionA, 7), dekA, plain);
    expect(written.seal).toMatch(/^[0-9a-f]{112}$/);
    const bytes = await fs.readFile(first);
    expect(written.seal).toBe(bytes.subarray(SEGMENT_HEADER_SIZE, CHUNKS_START).toString('hex'));
    const pins = { ...expectA(7), length: written.length, seal: written.seal };
    expect((await readSegment(first, pins, keyForA)).equals(plain)).toBe(true);
    // The same id sealed again (same length): authentic under the same DEK, another salt.
    const second = join(dir, 'sealed-v2.vseg');
    await writeSegment(second, header(collectionA, 7), dekA, randomBytes(plain.length));
    await expectCorrupt(SegmentReader.open(second, pins, keyForA), second, 'seal');
    // The seal supersedes the hash (it binds every chunk already): the file is not hashed again.
    const wrongHash = { ...pins, sha256: '00'.repeat(32) };
    expect((await readSegment(first, wrongHash, keyForA)).equals(plain)).toBe(true);
    // Without a seal (a manifest written before seals were recorded), the hash decides as before.
    await expectCorrupt(readSegment(first, { ...expectA(7), sha256: '00'.repeat(32) }, keyForA), first, 'hash');
  });

  it('reports a missing file by name', async () => {
    const gone = join(dir, 'gone.vseg');
    await expectCorrupt(readSegment(gone, expectA(7), keyForA), gone, 'missing');
  });

  it('never leaves a partial file under the final name', async () => {
    const path = join(dir, 'partial.vseg');
    const failing = (async function* () {
      yield randomBytes(40000);
      throw new Error('source failed');
    })();
    await expect(writeSegment(path, header(collectionA, 9), dekA, failing)).rejects.toThrow('source failed');
    await expect(fs.access(path)).rejects.toThrow();
    expect((await fs.readdir(dir)).filter((n) => n.includes('partial'))).toEqual([]);
  });
});
