import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, RollbackError } from '../../src/errors.js';
import { KeyManager } from '../../src/keys/key-manager.js';
import { SegmentKind, writeSegment } from '../../src/storage/segment.js';
import { WAL_HEADER_SIZE } from '../../src/storage/wal.js';
import { openStore } from '../../src/store/index.js';
import { openTestStore, storeDirs, type TestStoreDirs } from '../helpers/store.js';
import { randomVectors } from './helpers.js';

/** A store with two flushed collections; returns their directories. */
async function twoCollections(d: TestStoreDirs): Promise<{ a: string; b: string; aId: string; bId: string }> {
  const store = await openTestStore(d);
  const vecs = randomVectors(3000, 16, 3);
  const a = await store.createCollection('a', { dim: 16 });
  const b = await store.createCollection('b', { dim: 16 });
  await a.upsert(vecs.slice(0, 1500).map((v, i) => ({ id: `a${i}`, vector: v, metadata: { n: i } })));
  await b.upsert(vecs.slice(1500).map((v, i) => ({ id: `b${i}`, vector: v, metadata: { n: i } })));
  await store.close();
  const ids = { aId: a.info.id, bId: b.info.id };
  return { a: join(d.dir, 'collections', ids.aId), b: join(d.dir, 'collections', ids.bId), ...ids };
}

const open = (d: TestStoreDirs) => openStore({ dir: d.dir, keys: { provider: 'local', keyDir: d.keyDir } });

async function corruptError(d: TestStoreDirs): Promise<CorruptDataError> {
  const err = await open(d).then(
    async (s) => {
      await s.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptDataError);
  return err as CorruptDataError;
}

describe('tampering is detected with a typed error naming the file', () => {
  it('a flipped byte in a segment: CorruptDataError naming file and page', async () => {
    const d = storeDirs();
    const { a } = await twoCollections(d);
    // The index: in 'l2' the vector block holds only the ids (one page), the index the vectors.
    const file = join(a, 'seg', '000000000001.index.vseg');
    const bytes = await fs.readFile(file);
    const at = 52 + 56 + 16_400 + 100; // inside the second page
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await fs.writeFile(file, bytes);
    const err = await corruptError(d);
    expect(err.file).toBe(file);
    expect(err.page).toBe(1);
    expect(err.message).toContain(file);
  });

  it("a segment swapped with another collection's: CorruptDataError", async () => {
    const d = storeDirs();
    const { a, b } = await twoCollections(d);
    const file = join(a, 'seg', '000000000001.vectors.vseg');
    await fs.copyFile(join(b, 'seg', '000000000001.vectors.vseg'), file);
    const err = await corruptError(d);
    expect(err.file).toBe(file);
  });

  it('a segment replaced by another authentic version of itself: its seal does not match the manifest', async () => {
    const d = storeDirs();
    const { a, aId } = await twoCollections(d);
    const file = join(a, 'seg', '000000000001.metadata.vseg');
    const km = await KeyManager.open({ dir: d.dir, localKeyDir: d.keyDir });
    const storeId = km.storeId;
    // Sealed under the right key with the right header: only the manifest's pin (its seal) can tell.
    await km.withDek(aId, 1, (dek) =>
      writeSegment(file, { kind: SegmentKind.Metadata, storeId, collectionId: aId, segmentId: 1, dekVersion: 1 }, dek, Buffer.from([0x90])),
    );
    await km.close();
    const err = await corruptError(d);
    expect(err.file).toBe(file);
    expect(['seal', 'truncated', 'extended']).toContain(err.reason);
  });

  it('an older segment file of the same id (same length) is caught by its seal', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 4 });
    await col.upsert({ id: 'x', vector: [1, 2, 3, 4], metadata: { v: 1 } });
    await col.flush();
    const file = join(col.dir, 'seg', '000000000001.metadata.vseg');
    const old = await fs.readFile(file);
    await store.close();
    // A second store life writes group 1 again after the manifest is reset: simulate by resealing.
    const km = await KeyManager.open({ dir: d.dir, localKeyDir: d.keyDir });
    await km.withDek(col.info.id, 1, (dek) =>
      writeSegment(
        file,
        { kind: SegmentKind.Metadata, storeId: km.storeId, collectionId: col.info.id, segmentId: 1, dekVersion: 1 },
        dek,
        Buffer.alloc(old.length - 52 - 56 - 16, 0x90),
      ),
    );
    await km.close();
    expect((await fs.readFile(file)).length).toBe(old.length);
    const err = await corruptError(d);
    expect(err.reason).toBe('seal');
  });

  it('a rolled-back MANIFEST: RollbackError naming MANIFEST', async () => {
    const d = storeDirs();
    const store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 4 });
    await col.upsert({ id: 'x', vector: [1, 2, 3, 4] });
    await col.flush();
    const manifest = join(col.dir, 'MANIFEST');
    const old = await fs.readFile(manifest);
    await col.upsert({ id: 'y', vector: [4, 3, 2, 1] });
    await col.flush();
    await store.close();
    await fs.writeFile(manifest, old);
    const err = await corruptError(d);
    expect(err).toBeInstanceOf(RollbackError);
    expect(err.file).toBe(manifest);
  });

  it('a catalog that maps a name to another collection: CorruptDataError naming CATALOG (its hash is in the store state)', async () => {
    const d = storeDirs();
    const { aId, bId } = await twoCollections(d);
    const catalog = join(d.dir, 'CATALOG');
    const text = await fs.readFile(catalog, 'utf8');
    await fs.writeFile(catalog, text.replaceAll(aId, 'TMP').replaceAll(bId, aId).replaceAll('TMP', bId));
    const err = await corruptError(d);
    expect(err.file).toBe(catalog);
    expect(err.reason).toBe('state');
  });

  it('a damaged WAL record: CorruptDataError naming the WAL file and record; a torn tail is dropped', async () => {
    const d = storeDirs();
    let store = await openTestStore(d);
    const col = await store.createCollection('c', { dim: 4 });
    await col.upsert({ id: 'x', vector: [1, 2, 3, 4] });
    await col.upsert({ id: 'y', vector: [4, 3, 2, 1] });
    await store.close({ flush: false });
    const walDir = join(col.dir, 'wal');
    const [name] = (await fs.readdir(walDir)).sort();
    const wal = join(walDir, name!);
    const good = await fs.readFile(wal);
    // Torn tail: a length that runs past the end, then a zero-filled tail.
    await fs.writeFile(wal, Buffer.concat([good, Buffer.from([0, 0, 0, 200, 1, 2, 3])]));
    store = await openTestStore(d);
    expect(store.collection('c').count).toBe(2);
    await store.close({ flush: false });
    expect((await fs.readFile(wal)).equals(good)).toBe(true);
    await fs.writeFile(wal, Buffer.concat([good, Buffer.alloc(64)]));
    store = await openTestStore(d);
    expect(store.collection('c').count).toBe(2);
    await store.close({ flush: false });
    // A flipped byte in the first record.
    const bad = Buffer.from(good);
    bad[WAL_HEADER_SIZE + 10] = (bad[WAL_HEADER_SIZE + 10] as number) ^ 0x80;
    await fs.writeFile(wal, bad);
    const err = await corruptError(d);
    expect(err.file).toBe(wal);
    expect(err.message).toContain('WAL record 0');
  });
});
