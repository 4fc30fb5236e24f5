import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadNativeGcm, nodeGcm, type GcmPrimitive } from '../crypto/gcm.js';
import { hkdfExpandSha512 } from '../crypto/hkdf.js';
import { CorruptDataError, InvalidArgumentError, UnsupportedVersionError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import { bytesToId, idToBytes } from '../util/ids.js';
import { createFileAtomic, fsyncDir, openDurable, storageError } from '../util/durable.js';
import type { DurableFile } from '../util/file-layer.js';

/**
 * Write-ahead log files. One file per WAL sequence number, append-only.
 *
 * Header (84 bytes, plaintext, big-endian):
 *   0  magic "VWAL"            4
 *   4  format version          2   (1)
 *   6  reserved                2   (0)
 *   8  store id               16
 *  24  collection id          16
 *  40  WAL sequence number     8
 *  48  DEK version             4
 *  52  manifest generation     8   (the manifest this file follows)
 *  60  salt                   24
 *
 * Records: [u32 sealed length][AES-256-GCM ciphertext || tag]. The record key
 * is HKDF-SHA-512(DEK, label || header), so every file has its own key; the
 * nonce is the record's sequence number in the file (unique per key); the
 * associated data binds collection id, WAL sequence number, record sequence
 * number and sealed length, so records cannot be moved between files or
 * positions.
 */

export const WAL_MAGIC = Buffer.from('VWAL', 'latin1');
export const WAL_FORMAT_VERSION = 1;
export const WAL_HEADER_SIZE = 84;
const KEY_LABEL = Buffer.from('vectorseal/wal/v1', 'latin1');
const TAG = 16;
/** A sane upper bound on one record; a larger length field is damage. */
export const MAX_WAL_RECORD = 256 * 1024 * 1024;

export interface WalHeader {
  storeId: string;
  collectionId: string;
  walSeq: number;
  dekVersion: number;
  /** Generation of the manifest that was current when the file was created. */
  generation: number;
  salt: Buffer;
}

export interface WalExpectation {
  storeId: string;
  collectionId: string;
  walSeq: number;
}

let gcm: GcmPrimitive | undefined;
function primitive(): GcmPrimitive {
  gcm ??= process.env['VECTORSEAL_CRYPTO'] === 'node' ? nodeGcm : (loadNativeGcm() ?? nodeGcm);
  return gcm;
}

/** File name of WAL file `seq` (zero-padded so names sort by sequence). */
export function walFileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.wal`;
}

/** The WAL sequence numbers present in `dir`, ascending. */
export async function listWalFiles(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => /^(\d{12})\.wal$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

function encodeHeader(h: WalHeader): Buffer {
  const b = Buffer.alloc(WAL_HEADER_SIZE);
  WAL_MAGIC.copy(b, 0);
  b.writeUInt16BE(WAL_FORMAT_VERSION, 4);
  idToBytes(h.storeId).copy(b, 8);
  idToBytes(h.collectionId).copy(b, 24);
  b.writeBigUInt64BE(BigInt(h.walSeq), 40);
  b.writeUInt32BE(h.dekVersion, 48);
  b.writeBigUInt64BE(BigInt(h.generation), 52);
  h.salt.copy(b, 60);
  return b;
}

function decodeHeader(b: Buffer, file: string): WalHeader {
  if (b.length < WAL_HEADER_SIZE || !b.subarray(0, 4).equals(WAL_MAGIC)) {
    throw new CorruptDataError('not a vectorseal WAL file (bad magic or short header)', { file, reason: 'header' });
  }
  const version = b.readUInt16BE(4);
  if (version !== WAL_FORMAT_VERSION) {
    throw new UnsupportedVersionError(`WAL format version ${version} is not supported (file ${file})`);
  }
  return {
    storeId: bytesToId(b.subarray(8, 24)),
    collectionId: bytesToId(b.subarray(24, 40)),
    walSeq: Number(b.readBigUInt64BE(40)),
    dekVersion: b.readUInt32BE(48),
    generation: Number(b.readBigUInt64BE(52)),
    salt: Buffer.from(b.subarray(60, 84)),
  };
}

function deriveKey(dek: Uint8Array, header: Buffer): Buffer {
  return hkdfExpandSha512(dek, Buffer.concat([KEY_LABEL, header]), 32);
}

function nonce(recordSeq: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(recordSeq), 4);
  return n;
}

function aad(h: WalHeader, recordSeq: number, sealedLength: number): Buffer {
  const a = Buffer.alloc(16 + 8 + 8 + 4);
  idToBytes(h.collectionId).copy(a, 0);
  a.writeBigUInt64BE(BigInt(h.walSeq), 16);
  a.writeBigUInt64BE(BigInt(recordSeq), 24);
  a.writeUInt32BE(sealedLength, 32);
  return a;
}

/** Appends sealed records to one WAL file. */
export class WalWriter {
  private recordSeq = 0;
  private closed = false;
  /** SHA-256 of the bytes known to be in the file (header and whole appends). */
  private readonly hash: Hash = createHash('sha256');
  /** Set when an append failed part-way: the file's tail is then unknown and the file cannot be sealed. */
  private torn = false;

  private constructor(
    readonly path: string,
    readonly header: WalHeader,
    private readonly handle: DurableFile,
    private readonly key: Buffer,
    private readonly sync: boolean,
    headerBytes: Buffer,
  ) {
    this.hash.update(headerBytes);
  }

  /**
   * Creates WAL file `header.walSeq` in `dir`. The header appears whole or not
   * at all; the file is fsynced with its directory before it is used.
   */
  static async create(dir: string, fields: Omit<WalHeader, 'salt'>, dek: Uint8Array, options: { sync?: boolean } = {}): Promise<WalWriter> {
    const header: WalHeader = { ...fields, salt: randomBytes(24) };
    const bytes = encodeHeader(header);
    const path = join(dir, walFileName(fields.walSeq));
    await createFileAtomic(path, bytes, 0o600);
    const handle = await openDurable(path, 'append');
    return new WalWriter(path, header, handle, deriveKey(dek, bytes), options.sync ?? true, bytes);
  }

  /**
   * The file's record count and SHA-256 as they stand, for sealing it in the
   * store state once it is superseded (or at a clean close). Undefined when
   * an append failed part-way: such a file is repaired on the next open, not
   * sealed.
   */
  seal(): { seq: number; records: number; sha256: string } | undefined {
    if (this.torn) return undefined;
    return { seq: this.header.walSeq, records: this.recordSeq, sha256: this.hash.copy().digest('hex') };
  }

  /** Records appended so far. */
  get records(): number {
    return this.recordSeq;
  }

  /**
   * Seals each payload as its own record and appends them with one write;
   * with sync on (the default) resolves only once they are durable.
   */
  async append(payloads: Uint8Array[]): Promise<void> {
    if (this.closed) throw new InvalidArgumentError('WAL file already closed');
    const g = primitive();
    const parts: Uint8Array[] = [];
    for (const p of payloads) {
      const len = p.length + TAG;
      if (len > MAX_WAL_RECORD) throw new InvalidArgumentError(`WAL record expected at most ${MAX_WAL_RECORD} bytes, got ${len}`);
      const seq = this.recordSeq++;
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(len, 0);
      parts.push(prefix, g.seal(this.key, nonce(seq), aad(this.header, seq, len), p));
    }
    const buf = Buffer.concat(parts);
    try {
      await this.handle.write(buf);
      crashPoint('wal:written');
      if (this.sync) await this.handle.fdatasync();
    } catch (err) {
      this.torn = true;
      throw storageError(err, this.path);
    }
    this.hash.update(buf);
    crashPoint('wal:synced');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.key.fill(0);
    await this.handle.close();
  }
}

export interface WalContents {
  header: WalHeader;
  /** Decrypted record payloads, in order. */
  records: Buffer[];
  /** Bytes dropped from a torn tail (0 when the file ended cleanly). */
  truncated: number;
  /** SHA-256 (hex) of the header and whole records (a torn tail excluded). */
  sha256: string;
}

function allZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Reads only the plaintext header of a WAL file (for rollback checks). */
export async function readWalHeader(path: string, expect: WalExpectation): Promise<WalHeader> {
  const h = await fs.open(path, constants.O_RDONLY);
  try {
    const b = Buffer.alloc(WAL_HEADER_SIZE);
    const { bytesRead } = await h.read(b, 0, b.length, 0);
    const header = decodeHeader(b.subarray(0, bytesRead), path);
    checkHeader(header, expect, path);
    return header;
  } finally {
    await h.close();
  }
}

function checkHeader(h: WalHeader, expect: WalExpectation, file: string): void {
  if (h.storeId !== expect.storeId || h.collectionId !== expect.collectionId) {
    throw new CorruptDataError('WAL file belongs to another store or collection', { file, reason: 'foreign' });
  }
  if (h.walSeq !== expect.walSeq) {
    throw new CorruptDataError(`WAL file has sequence number ${h.walSeq}, its name says ${expect.walSeq}`, { file, reason: 'swapped' });
  }
}

/**
 * Reads and authenticates every record of a WAL file. A torn last record (its
 * length runs past the end of the file, or the tail is zero-filled, as a
 * crash during an append leaves it) is dropped and, with `repair`, truncated
 * away. Any other damage is a CorruptDataError naming the file and record.
 */
export async function readWal(
  path: string,
  expect: WalExpectation,
  keyFor: (dekVersion: number) => Uint8Array | Promise<Uint8Array>,
  options: { repair?: boolean } = {},
): Promise<WalContents> {
  const file = await fs.readFile(path);
  const header = decodeHeader(file, path);
  checkHeader(header, expect, path);
  const key = deriveKey(await keyFor(header.dekVersion), file.subarray(0, WAL_HEADER_SIZE));
  const g = primitive();
  const records: Buffer[] = [];
  let off = WAL_HEADER_SIZE;
  let seq = 0;
  let tornAt: number | undefined;
  try {
    while (off < file.length) {
      if (off + 4 > file.length || allZero(file.subarray(off))) {
        tornAt = off;
        break;
      }
      const len = file.readUInt32BE(off);
      if (len < TAG || len > MAX_WAL_RECORD) {
        throw new CorruptDataError(`WAL record ${seq} has an impossible length ${len}`, { file: path, page: seq, reason: 'length' });
      }
      if (off + 4 + len > file.length) {
        tornAt = off;
        break;
      }
      const sealed = file.subarray(off + 4, off + 4 + len);
      const plain = g.open(key, nonce(seq), aad(header, seq, len), sealed);
      if (plain === undefined) {
        throw new CorruptDataError(`WAL record ${seq} failed authentication`, { file: path, page: seq, reason: 'auth' });
      }
      records.push(Buffer.from(plain));
      off += 4 + len;
      seq++;
    }
  } finally {
    key.fill(0);
  }
  const truncated = tornAt === undefined ? 0 : file.length - tornAt;
  // Over the whole records only: a torn tail dropped here is not part of what was written and sealed.
  const sha256 = createHash('sha256')
    .update(tornAt === undefined ? file : file.subarray(0, tornAt))
    .digest('hex');
  if (tornAt !== undefined && options.repair) await truncateWal(path, tornAt);
  file.fill(0);
  return { header, records, truncated, sha256 };
}

/**
 * Record count and SHA-256 of a WAL file as it is on disk, read without a key
 * (the length prefixes frame the records): for building a store state from
 * files already trusted (a verified restore, an upgrade).
 */
export async function walFileSeal(path: string, seq: number): Promise<{ seq: number; records: number; sha256: string }> {
  const file = await fs.readFile(path);
  let off = WAL_HEADER_SIZE;
  let records = 0;
  while (off + 4 <= file.length) {
    const len = file.readUInt32BE(off);
    if (len < TAG || off + 4 + len > file.length) break;
    off += 4 + len;
    records++;
  }
  return { seq, records, sha256: createHash('sha256').update(file).digest('hex') };
}

/**
 * Where the whole records of a WAL file end, found from the length prefixes
 * alone (no key, nothing decrypted), as readWal frames them: a torn last
 * record (a length running past the end, or a zero-filled tail) is not
 * counted, an impossible length is a CorruptDataError. With `maxRecords`,
 * stops after that many (a sealed file's records; bytes after them were
 * never part of it). For copying a file's ciphertext up to a cut point (a
 * backup of a collection whose data is not loaded).
 */
export async function walRecordsEnd(
  path: string,
  maxRecords: number = Number.POSITIVE_INFINITY,
): Promise<{ length: number; records: number }> {
  const h = await fs.open(path, constants.O_RDONLY);
  try {
    const size = (await h.stat()).size;
    if (size < WAL_HEADER_SIZE) throw new CorruptDataError('not a vectorseal WAL file (short header)', { file: path, reason: 'header' });
    const prefix = Buffer.alloc(4);
    let off = WAL_HEADER_SIZE;
    let records = 0;
    while (records < maxRecords && off + 4 <= size) {
      await readFully(h, prefix, off, path);
      const len = prefix.readUInt32BE(0);
      if (len === 0 && (await zeroFrom(h, off + 4, size))) break;
      if (len < TAG || len > MAX_WAL_RECORD) {
        throw new CorruptDataError(`WAL record ${records} has an impossible length ${len}`, {
          file: path,
          page: records,
          reason: 'length',
        });
      }
      if (off + 4 + len > size) break;
      off += 4 + len;
      records++;
    }
    return { length: off, records };
  } finally {
    await h.close();
  }
}

async function readFully(h: FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
  const { bytesRead } = await h.read(buf, 0, buf.length, position);
  if (bytesRead !== buf.length) throw new CorruptDataError('WAL file shrank while it was read', { file, reason: 'length' });
}

/** Whether every byte from `from` to `size` is zero (the tail a crash during an append leaves). */
async function zeroFrom(h: FileHandle, from: number, size: number): Promise<boolean> {
  const buf = Buffer.alloc(64 * 1024);
  for (let at = from; at < size; ) {
    const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, size - at), at);
    if (bytesRead === 0) break;
    if (!allZero(buf.subarray(0, bytesRead))) return false;
    at += bytesRead;
  }
  return true;
}

/** Cuts a WAL file back to `length` bytes (a torn tail), durably. */
export async function truncateWal(path: string, length: number): Promise<void> {
  const h = await openDurable(path, 'write');
  try {
    await h.truncate(length);
    await h.fsync();
  } finally {
    await h.close();
  }
  await fsyncDir(dirname(path));
}
