import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, StagingUnavailableError } from '../../src/errors.js';
import { Staging, isRamBacked } from '../../src/storage/staging.js';
import { WAL_HEADER_SIZE, WalWriter, readWal, walFileName } from '../../src/storage/wal.js';
import { newId } from '../../src/util/ids.js';
import { tempDir } from '../helpers/tmp.js';

const storeId = newId();
const collectionId = newId();
const dek = randomBytes(32);
const keyFor = () => dek;

async function walWith(dir: string, payloads: Buffer[][]): Promise<string> {
  const w = await WalWriter.create(dir, { storeId, collectionId, walSeq: 7, dekVersion: 1, generation: 3 }, dek);
  for (const batch of payloads) await w.append(batch);
  await w.close();
  return join(dir, walFileName(7));
}

describe('WAL files', () => {
  it('round-trips records, each sealed on its own, and keeps no plaintext', async () => {
    const dir = tempDir();
    const recs = [Buffer.from('PLAINTEXT-ONE'), Buffer.from('PLAINTEXT-TWO'), Buffer.from('PLAINTEXT-THREE')];
    const path = await walWith(dir, [[recs[0]!], [recs[1]!, recs[2]!]]);
    const raw = await fs.readFile(path);
    expect(raw.includes(Buffer.from('PLAINTEXT'))).toBe(false);
    const c = await readWal(path, { storeId, collectionId, walSeq: 7 }, keyFor);
    expect(c.records.map(String)).toEqual(recs.map(String));
    expect(c.header.generation).toBe(3);
    expect(c.truncated).toBe(0);
  });

  it('drops and truncates a torn tail, rejects a damaged full record, a wrong key, a moved file', async () => {
    const dir = tempDir();
    const path = await walWith(dir, [[Buffer.from('a')], [Buffer.from('b')]]);
    const good = await fs.readFile(path);
    await fs.writeFile(path, good.subarray(0, good.length - 5));
    const torn = await readWal(path, { storeId, collectionId, walSeq: 7 }, keyFor, { repair: true });
    expect(torn.records.map(String)).toEqual(['a']);
    expect((await fs.stat(path)).size).toBe(WAL_HEADER_SIZE + 4 + 1 + 16);

    const damaged = Buffer.from(good);
    damaged[good.length - 3] = (damaged[good.length - 3] as number) ^ 1;
    await fs.writeFile(path, damaged);
    await expect(readWal(path, { storeId, collectionId, walSeq: 7 }, keyFor)).rejects.toMatchObject({
      file: path,
      page: 1,
      reason: 'auth',
    });

    await fs.writeFile(path, good);
    await expect(readWal(path, { storeId, collectionId, walSeq: 7 }, () => randomBytes(32))).rejects.toBeInstanceOf(CorruptDataError);
    await expect(readWal(path, { storeId, collectionId, walSeq: 8 }, keyFor)).rejects.toMatchObject({ reason: 'swapped' });
    await expect(readWal(path, { storeId, collectionId: newId(), walSeq: 7 }, keyFor)).rejects.toMatchObject({ reason: 'foreign' });
  });
});

describe('staging', () => {
  it('uses a RAM-backed directory, files 0600 in a 0700 dir, removed after use', async () => {
    const s = await Staging.open();
    expect(await isRamBacked(s.dir)).toBe(true);
    expect((await fs.stat(s.dir)).mode & 0o777).toBe(0o700);
    let seen = '';
    await s.withFile(async (p) => {
      seen = p;
      expect((await fs.stat(p)).mode & 0o777).toBe(0o600);
    });
    await expect(fs.access(seen)).rejects.toThrow();
    await s.close();
    await expect(fs.access(s.dir)).rejects.toThrow();
  });

  it('refuses a disk-backed location unless named explicitly', async () => {
    const dir = tempDir();
    expect(await isRamBacked(dir)).toBe(false);
    const explicit = await Staging.open(dir);
    await explicit.close();
    expect(new StagingUnavailableError('x').code).toBe('VS_STAGING_UNAVAILABLE');
  });
});
