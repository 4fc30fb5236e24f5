import { constants, promises as fs, type Stats } from 'node:fs';
import { OFFTHREAD_MIN_BYTES, segmentHash, type SegmentHash } from '../crypto/offthread-hash.js';
import { sharedBuffer } from '../crypto/pool.js';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import {
  CHUNK_SIZE,
  MESSAGE_HEADER_SIZE,
  MessageOpener,
  MessageSealer,
  SEALED_CHUNK_SIZE,
  chunkCount,
  chunkOffset,
  messageLength,
} from '../crypto/chunked.js';
import type { ChunkEngine } from '../crypto/engine.js';
import { CorruptDataError, InvalidArgumentError, UnsupportedVersionError } from '../errors.js';
import { bytesToId, idToBytes } from '../util/ids.js';
import { fsyncDir, openDurable, removeFile, renameFile, storageError } from '../util/durable.js';
import type { DurableFile } from '../util/file-layer.js';

/**
 * Immutable segment files: a small plaintext header naming everything a reader
 * needs to pick the key (and nothing secret), then a C2SP chunked-encryption
 * message under the collection's DEK whose context is the exact header bytes.
 *
 * Header (52 bytes, big-endian):
 *   0  magic "VSEG"        4
 *   4  format version      2   (1)
 *   6  kind                1   (SegmentKind)
 *   7  flags               1   (0)
 *   8  store id           16   (UUID bytes)
 *  24  collection id      16   (UUID bytes)
 *  40  segment id          8
 *  48  DEK version         4
 */

export const SEGMENT_MAGIC = Buffer.from('VSEG', 'latin1');
export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_SIZE = 52;

export const SegmentKind = {
  /** A serialized HNSW index (hnswlib). */
  Index: 1,
  /** Vector block: ids and float32 vectors. */
  Vectors: 2,
  /** Metadata block: msgpackr-encoded metadata. */
  Metadata: 3,
  /** A collection manifest. */
  Manifest: 4,
  /** A backup manifest. */
  Backup: 5,
  /** Deleted ids (tombstones). */
  Tombstones: 6,
} as const;
export type SegmentKind = (typeof SegmentKind)[keyof typeof SegmentKind];

const KIND_NAMES = new Map<number, string>(Object.entries(SegmentKind).map(([k, v]) => [v, k]));

export function segmentKindName(kind: number): string {
  return KIND_NAMES.get(kind) ?? `kind ${kind}`;
}

export interface SegmentHeader {
  kind: SegmentKind;
  storeId: string;
  collectionId: string;
  segmentId: number;
  dekVersion: number;
}

/** What the reader knows the file must be; anything else is a foreign or swapped file. */
export interface SegmentExpectation {
  storeId: string;
  collectionId: string;
  kind?: SegmentKind;
  segmentId?: number;
  dekVersion?: number;
  /** File length recorded in the manifest. */
  length?: number;
  /**
   * SHA-256 (hex) of the whole file recorded in the manifest; checked by
   * readAll when no `seal` is given (manifests written before seals were
   * recorded).
   */
  sha256?: string;
  /**
   * The message's salt and key commitment (hex) recorded in the manifest;
   * checked at open, before any page is read. Under one DEK a salt is never
   * used twice and every chunk is authenticated under keys derived from it,
   * so with the length pinned too only the very file the manifest names
   * opens: an older or replayed authentic file has another salt. It makes
   * the SHA-256 redundant, which readAll then skips.
   */
  seal?: string;
}

/** Returns the DEK of a given version of the collection named in the header. */
export type DekLookup = (dekVersion: number) => Uint8Array | Promise<Uint8Array>;

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  if (!Number.isSafeInteger(h.segmentId) || h.segmentId < 0) {
    throw new InvalidArgumentError(`"segmentId" expected a non-negative safe integer, got ${h.segmentId}`);
  }
  if (!Number.isSafeInteger(h.dekVersion) || h.dekVersion < 1 || h.dekVersion > 0xffffffff) {
    throw new InvalidArgumentError(`"dekVersion" expected an integer in 1..2^32-1, got ${h.dekVersion}`);
  }
  const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt16BE(SEGMENT_FORMAT_VERSION, 4);
  b.writeUInt8(h.kind, 6);
  b.writeUInt8(0, 7);
  idToBytes(h.storeId).copy(b, 8);
  idToBytes(h.collectionId).copy(b, 24);
  b.writeBigUInt64BE(BigInt(h.segmentId), 40);
  b.writeUInt32BE(h.dekVersion, 48);
  return b;
}

export function decodeSegmentHeader(b: Uint8Array, file?: string): SegmentHeader {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < SEGMENT_HEADER_SIZE || !buf.subarray(0, 4).equals(SEGMENT_MAGIC)) {
    throw new CorruptDataError('not a vectorseal segment (bad magic or short header)', withFile(file, 'header'));
  }
  const version = buf.readUInt16BE(4);
  if (version !== SEGMENT_FORMAT_VERSION) {
    throw new UnsupportedVersionError(
      `segment format version ${version} is not supported (this build reads ${SEGMENT_FORMAT_VERSION})${file ? ` (file ${file})` : ''}`,
    );
  }
  const kind = buf.readUInt8(6);
  if (!KIND_NAMES.has(kind) || buf.readUInt8(7) !== 0) {
    throw new CorruptDataError(`unknown segment kind ${kind}`, withFile(file, 'header'));
  }
  const segmentId = buf.readBigUInt64BE(40);
  if (segmentId > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CorruptDataError('segment id out of range', withFile(file, 'header'));
  }
  return {
    kind: kind as SegmentKind,
    storeId: bytesToId(buf.subarray(8, 24)),
    collectionId: bytesToId(buf.subarray(24, 40)),
    segmentId: Number(segmentId),
    dekVersion: buf.readUInt32BE(48),
  };
}

function withFile(file: string | undefined, reason: string): { file?: string; reason: string } {
  return file === undefined ? { reason } : { file, reason };
}

/** Re-throws a chunked-layer error with the file it happened in. */
function inFile(err: unknown, file: string): never {
  if (err instanceof CorruptDataError && err.file === undefined) {
    throw new CorruptDataError(err.message.replace(/ \(page \d+\)$/, ''), {
      file,
      ...(err.page === undefined ? {} : { page: err.page }),
      ...(err.reason === undefined ? {} : { reason: err.reason }),
      cause: err,
    });
  }
  throw err;
}

export function checkExpectation(h: SegmentHeader, expect: SegmentExpectation, file: string): void {
  if (h.storeId !== expect.storeId || h.collectionId !== expect.collectionId) {
    throw new CorruptDataError('segment belongs to another store or collection', { file, reason: 'foreign' });
  }
  if (expect.kind !== undefined && h.kind !== expect.kind) {
    throw new CorruptDataError(`segment is a ${segmentKindName(h.kind)} file, expected ${segmentKindName(expect.kind)}`, {
      file,
      reason: 'swapped',
    });
  }
  if (expect.segmentId !== undefined && h.segmentId !== expect.segmentId) {
    throw new CorruptDataError(`segment id ${h.segmentId} where ${expect.segmentId} was expected`, { file, reason: 'swapped' });
  }
  if (expect.dekVersion !== undefined && h.dekVersion !== expect.dekVersion) {
    throw new CorruptDataError(`segment sealed under DEK version ${h.dekVersion}, manifest says ${expect.dekVersion}`, {
      file,
      reason: 'swapped',
    });
  }
}

export interface SegmentWriteResult {
  /** Bytes in the file. */
  length: number;
  /** SHA-256 (hex) of the whole file. */
  sha256: string;
  /** The message's salt and key commitment (hex), for the manifest to pin (see SegmentExpectation.seal). */
  seal: string;
  /** Plaintext bytes sealed. */
  plaintextLength: number;
}

export interface SegmentWriteOptions {
  engine?: ChunkEngine;
  /** Chunks sealed per write call (batching amortises the syscalls). */
  batchChunks?: number;
  /**
   * Called once the temp file is durable and before it is renamed into
   * place, with its length and hash: lets the store state name a manifest
   * before it can appear (see store/state.ts).
   */
  beforeRename?: (result: SegmentWriteResult) => Promise<void>;
  /**
   * Whether `finish` fsyncs the directory after the rename (default true).
   * A caller writing several files into one directory passes false and
   * fsyncs the directory once, before anything names the files.
   */
  syncDir?: boolean;
  /** Plaintext bytes the caller expects to write: a large segment is hashed on the hashing worker (crypto/offthread-hash.ts). */
  sizeHint?: number;
}

/**
 * Writes one segment incrementally into a temp file beside `path`; `finish`
 * seals the final chunk, fsyncs, renames into place and fsyncs the directory,
 * so a crash never leaves a partial file under the final name.
 */
export class SegmentWriter {
  private readonly sealer: MessageSealer;
  private readonly hash: SegmentHash;
  private readonly pending: Buffer;
  /**
   * Two output buffers, used in turn: the next batch is sealed (and hashed)
   * into one while the other is being written, so the JS thread's sealing
   * overlaps the write on the thread pool. Writes are issued one at a time,
   * in order.
   */
  private readonly outs: [Buffer, Buffer];
  private turn = 0;
  /** The write under way from the other buffer, if any (its failure surfaces at the next await of it). */
  private inflight: Promise<void> | undefined;
  private pendingLength = 0;
  /** How far into `pending` plaintext was ever copied: all that wipe() must zero. */
  private dirty = 0;
  private length = 0;
  private plaintextLength = 0;
  private done = false;
  /** Segment header and message header, written before the first chunk. */
  private initial: Buffer | undefined;
  private readonly beforeRename: SegmentWriteOptions['beforeRename'];
  private readonly syncDir: boolean;
  private readonly seal: string;

  private constructor(
    private readonly handle: DurableFile,
    private readonly tmp: string,
    private readonly path: string,
    header: Buffer,
    dek: Uint8Array,
    options: SegmentWriteOptions,
  ) {
    const batch = options.batchChunks ?? 64;
    this.beforeRename = options.beforeRename;
    this.syncDir = options.syncDir ?? true;
    this.sealer = new MessageSealer(dek, header, options.engine ? { engine: options.engine } : {});
    this.pending = Buffer.allocUnsafe(batch * CHUNK_SIZE);
    const size = options.sizeHint ?? 0;
    this.hash = segmentHash(size);
    // Shared memory when the hashing worker reads the sealed batches in place.
    const alloc = size >= OFFTHREAD_MIN_BYTES ? sharedBuffer : Buffer.allocUnsafe;
    this.outs = [alloc(batch * SEALED_CHUNK_SIZE), alloc(batch * SEALED_CHUNK_SIZE)];
    this.initial = Buffer.concat([header, this.sealer.header]);
    this.seal = Buffer.from(this.sealer.header).toString('hex');
  }

  static async create(path: string, header: SegmentHeader, dek: Uint8Array, options: SegmentWriteOptions = {}): Promise<SegmentWriter> {
    const tmp = `${dirname(path)}/.${basename(path)}.tmp`;
    await removeFile(tmp);
    const handle = await openDurable(tmp, 'create', 0o600);
    return new SegmentWriter(handle, tmp, path, encodeSegmentHeader(header), dek, options);
  }

  /** Appends plaintext. */
  async write(data: Uint8Array): Promise<void> {
    if (this.done) throw new InvalidArgumentError('segment already finished');
    if (this.initial) {
      await this.emit(this.initial);
      this.initial = undefined;
    }
    let off = 0;
    while (off < data.length) {
      const n = Math.min(this.pending.length - this.pendingLength, data.length - off);
      this.pending.set(data.subarray(off, off + n), this.pendingLength);
      this.pendingLength += n;
      if (this.pendingLength > this.dirty) this.dirty = this.pendingLength;
      off += n;
      this.plaintextLength += n;
      if (this.pendingLength === this.pending.length) {
        await this.sealPending(this.pendingLength);
      }
    }
  }

  /** Seals the rest, makes the file durable under its final name. */
  async finish(): Promise<SegmentWriteResult> {
    if (this.done) throw new InvalidArgumentError('segment already finished');
    try {
      if (this.initial) {
        await this.emit(this.initial);
        this.initial = undefined;
      }
      const whole = Math.floor(this.pendingLength / CHUNK_SIZE) * CHUNK_SIZE;
      if (whole > 0) await this.sealPending(whole);
      const out = this.out();
      const n = this.sealer.sealFinal(this.pending.subarray(0, this.pendingLength), out);
      await this.emit(out.subarray(0, n));
      this.done = true;
      await this.handle.fsync();
      await this.handle.close();
      const result = { length: this.length, sha256: await this.hash.digest(), seal: this.seal, plaintextLength: this.plaintextLength };
      await this.beforeRename?.(result);
      await renameFile(this.tmp, this.path);
      if (this.syncDir) await fsyncDir(dirname(this.path));
      return result;
    } catch (err) {
      await this.abort();
      throw storageError(err, this.path);
    } finally {
      this.wipe();
    }
  }

  /** Drops the temp file. */
  async abort(): Promise<void> {
    this.done = true;
    // No write may still be running on the handle when it closes.
    await this.inflight?.catch(() => undefined);
    this.inflight = undefined;
    this.wipe();
    await this.handle.close().catch(() => undefined);
    await removeFile(this.tmp);
  }

  private wipe(): void {
    this.sealer.dispose();
    // Bytes past `dirty` never held plaintext from this writer: zeroing 1 MiB per small segment (a manifest) was most of its cost.
    this.pending.fill(0, 0, this.dirty);
  }

  /** The output buffer not being written. */
  private out(): Buffer {
    return this.turn === 0 ? this.outs[0] : this.outs[1];
  }

  private async sealPending(bytes: number): Promise<void> {
    const out = this.out();
    const n = this.sealer.sealChunks(this.pending.subarray(0, bytes), out);
    this.pending.copy(this.pending, 0, bytes, this.pendingLength);
    this.pendingLength -= bytes;
    // Sealed while the previous batch was being written; this one is written while the next is sealed.
    await this.emit(out.subarray(0, n), false);
    this.turn ^= 1;
  }

  /**
   * Hashes `bytes` and writes them after the write under way. With `wait`
   * false the write is left running (its buffer must not change until the
   * next emit or finish, which await it).
   */
  private async emit(bytes: Uint8Array, wait = true): Promise<void> {
    // Hashed (on the worker, for a large segment) beside the write; updates reach the hash in file order.
    const hashing = this.hash.update(bytes);
    hashing.catch(() => undefined);
    const previous = this.inflight;
    this.inflight = undefined;
    try {
      await previous;
    } catch (err) {
      throw storageError(err, this.path);
    }
    const done = Promise.all([this.handle.write(bytes), hashing]).then(() => undefined);
    this.length += bytes.length;
    if (wait) {
      try {
        await done;
      } catch (err) {
        throw storageError(err, this.path);
      }
    } else {
      // Awaited by the next emit, finish or abort: never an unhandled rejection.
      done.catch(() => undefined);
      this.inflight = done;
    }
  }
}

/** Writes a whole segment from one buffer (see {@link SegmentWriter}). */
export async function writeSegment(
  path: string,
  header: SegmentHeader,
  dek: Uint8Array,
  data: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: SegmentWriteOptions = {},
): Promise<SegmentWriteResult> {
  // A buffer of known size needs no staging larger than itself (a manifest is a few hundred bytes).
  const batched =
    data instanceof Uint8Array && options.batchChunks === undefined
      ? { ...options, batchChunks: Math.min(64, Math.max(1, Math.ceil(data.length / CHUNK_SIZE))) }
      : options;
  const sized = data instanceof Uint8Array && batched.sizeHint === undefined ? { ...batched, sizeHint: data.length } : batched;
  const writer = await SegmentWriter.create(path, header, dek, sized);
  try {
    if (data instanceof Uint8Array) {
      await writer.write(data);
    } else {
      for await (const part of data) await writer.write(part);
    }
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.finish();
}

/** Chunks read and opened per batch by readAll/readInto (1 MiB of plaintext). */
const READ_BATCH_CHUNKS = 64;

export interface SegmentReadOptions {
  engine?: ChunkEngine;
}

/**
 * Reads a segment: checks the header against what the caller expects, picks
 * the DEK by the header's version, checks the key commitment, then serves
 * pages (random access), the whole plaintext, or a stream of pages.
 */
export class SegmentReader {
  private constructor(
    readonly path: string,
    readonly header: SegmentHeader,
    /** Plaintext length. */
    readonly length: number,
    /** File length. */
    readonly fileLength: number,
    private readonly handle: FileHandle,
    private readonly opener: MessageOpener,
    private readonly expect: SegmentExpectation,
  ) {}

  static async open(path: string, expect: SegmentExpectation, keyFor: DekLookup, options: SegmentReadOptions = {}): Promise<SegmentReader> {
    let handle: FileHandle;
    try {
      handle = await fs.open(path, constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CorruptDataError('segment file is missing', { file: path, reason: 'missing', cause: err });
      }
      throw err;
    }
    try {
      const stat: Stats = await handle.stat();
      if (expect.length !== undefined && stat.size !== expect.length) {
        throw new CorruptDataError(`segment is ${stat.size} bytes, manifest says ${expect.length}`, {
          file: path,
          reason: stat.size < expect.length ? 'truncated' : 'extended',
        });
      }
      const prefix = Buffer.alloc(SEGMENT_HEADER_SIZE + MESSAGE_HEADER_SIZE);
      const { bytesRead } = await handle.read(prefix, 0, prefix.length, 0);
      if (bytesRead < prefix.length) {
        throw new CorruptDataError('segment is shorter than its headers', { file: path, reason: 'truncated' });
      }
      const headerBytes = prefix.subarray(0, SEGMENT_HEADER_SIZE);
      const header = decodeSegmentHeader(headerBytes, path);
      checkExpectation(header, expect, path);
      if (expect.seal !== undefined && prefix.subarray(SEGMENT_HEADER_SIZE).toString('hex') !== expect.seal) {
        throw new CorruptDataError('segment salt and commitment do not match the manifest (replaced by an older or foreign file)', {
          file: path,
          reason: 'seal',
        });
      }
      let length: number;
      try {
        length = messageLength(stat.size - SEGMENT_HEADER_SIZE);
      } catch (err) {
        inFile(err, path);
      }
      const dek = await keyFor(header.dekVersion);
      let opener: MessageOpener;
      try {
        opener = new MessageOpener(
          dek,
          headerBytes,
          prefix.subarray(SEGMENT_HEADER_SIZE),
          options.engine ? { engine: options.engine } : {},
        );
      } catch (err) {
        inFile(err, path);
      }
      return new SegmentReader(path, header, length, stat.size, handle, opener, expect);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Number of pages (16 KiB chunks, the short final one included). */
  get pageCount(): number {
    return chunkCount(this.length);
  }

  /** Decrypts page `index` on its own. */
  async readPage(index: number): Promise<Uint8Array> {
    if (!Number.isInteger(index) || index < 0 || index >= this.pageCount) {
      throw new InvalidArgumentError(`"index" expected an integer in 0..${this.pageCount - 1}, got ${index}`);
    }
    const start = SEGMENT_HEADER_SIZE + chunkOffset(index);
    const end = Math.min(this.fileLength, start + SEALED_CHUNK_SIZE);
    const sealed = Buffer.allocUnsafe(end - start);
    await this.readExactly(sealed, start);
    try {
      return this.opener.openPage(index, sealed, index === this.pageCount - 1);
    } catch (err) {
      inFile(err, this.path);
    }
  }

  /**
   * Decrypts the whole segment, then checks the manifest's hash (when one was
   * given) on the very bytes it decrypted: the file is read once, in batches
   * of pages through one reused buffer. Decrypting first means damage is
   * reported with its page; the hash then catches an authentic but different
   * file (an older or replayed one).
   */
  async readAll(): Promise<Buffer> {
    const out = Buffer.allocUnsafe(this.length);
    try {
      await this.decryptAll(out, undefined);
    } catch (err) {
      out.fill(0);
      throw err;
    }
    return out;
  }

  /**
   * Like {@link readAll}, but hands the plaintext to `sink` batch by batch
   * (at most 1 MiB, in order) instead of holding it whole. The batch is a
   * reused buffer, zeroed at the end: the sink copies what it keeps. The
   * hash is checked after the last batch, so a sink must not act on the
   * plaintext until this resolves.
   */
  async readInto(sink: (plain: Uint8Array) => void | Promise<void>): Promise<void> {
    await this.decryptAll(undefined, sink);
  }

  private async decryptAll(out: Uint8Array | undefined, sink: ((plain: Uint8Array) => void | Promise<void>) | undefined): Promise<void> {
    // A pinned seal was checked at open and binds every chunk: hashing the file again would add nothing.
    const hash = this.expect.sha256 === undefined || this.expect.seal !== undefined ? undefined : segmentHash(this.fileLength);
    const prefix = SEGMENT_HEADER_SIZE + MESSAGE_HEADER_SIZE;
    const large = this.fileLength >= OFFTHREAD_MIN_BYTES;
    const batch = Math.min(READ_BATCH_CHUNKS * SEALED_CHUNK_SIZE, this.fileLength - prefix);
    // Two read buffers used in turn: the next batch is read on the thread pool while this one is hashed and opened
    // (shared memory when the hashing worker reads them in place).
    const alloc = large ? sharedBuffer : Buffer.allocUnsafe;
    const sealed = [alloc(Math.max(prefix, batch)), alloc(Math.max(prefix, batch))] as const;
    /** Per buffer, its batch's hash update under way: the buffer is read into again only once it is done. */
    const hashing: [Promise<void> | undefined, Promise<void> | undefined] = [undefined, undefined];
    const plain = out === undefined ? Buffer.allocUnsafe(Math.min(READ_BATCH_CHUNKS * CHUNK_SIZE, this.length)) : undefined;
    let reading: Promise<Buffer> | undefined;
    const readAt = (turn: number, pos: number): Promise<Buffer> => {
      const part = (turn === 0 ? sealed[0] : sealed[1]).subarray(0, Math.min(batch, this.fileLength - pos));
      return this.readExactly(part, pos).then(() => part);
    };
    try {
      if (hash) {
        await this.readExactly(sealed[0].subarray(0, prefix), 0);
        await hash.update(sealed[0].subarray(0, prefix));
      }
      let pos = prefix;
      let chunk = 0;
      let written = 0;
      let turn = 0;
      if (pos < this.fileLength) reading = readAt(turn, pos);
      while (reading) {
        const part = await reading;
        reading = undefined;
        const n = part.length;
        // The following batch, into the other buffer (once its last batch is hashed), while this one is hashed and opened.
        const other = turn ^ 1;
        if (pos + n < this.fileLength) {
          await (other === 0 ? hashing[0] : hashing[1]);
          reading = readAt(other, pos + n);
        }
        if (hash) {
          const h = hash.update(part);
          h.catch(() => undefined);
          if (turn === 0) hashing[0] = h;
          else hashing[1] = h;
        }
        turn = other;
        const last = pos + n === this.fileLength;
        const target = out === undefined ? (plain as Buffer) : out.subarray(written);
        let m: number;
        try {
          m = this.opener.openRange(chunk, part, target, last);
        } catch (err) {
          inFile(err, this.path);
        }
        if (sink) await sink(target.subarray(0, m));
        written += m;
        chunk += Math.ceil(n / SEALED_CHUNK_SIZE);
        pos += n;
      }
      // Every batch hashed (a failed update is an error here, not a mismatch).
      await Promise.all(hashing);
    } finally {
      // A read still under way (this batch failed) ends before the caller may close the handle.
      await reading?.catch(() => undefined);
      await Promise.all(hashing.map((h) => h?.catch(() => undefined)));
      plain?.fill(0);
    }
    if (hash && (await hash.digest()) !== this.expect.sha256) {
      throw new CorruptDataError('segment hash does not match the manifest (replaced by an older or foreign file)', {
        file: this.path,
        reason: 'hash',
      });
    }
  }

  /** Yields the plaintext page by page, in order. */
  async *pages(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < this.pageCount; i++) yield await this.readPage(i);
  }

  async close(): Promise<void> {
    this.opener.dispose();
    await this.handle.close();
  }

  private async readExactly(buf: Buffer, position: number): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await this.handle.read(buf, off, buf.length - off, position + off);
      if (bytesRead === 0) {
        throw new CorruptDataError('segment ended early', { file: this.path, reason: 'truncated' });
      }
      off += bytesRead;
    }
  }
}

/** Opens, reads whole and closes a segment. */
export async function readSegment(
  path: string,
  expect: SegmentExpectation,
  keyFor: DekLookup,
  options: SegmentReadOptions = {},
): Promise<Buffer> {
  const reader = await SegmentReader.open(path, expect, keyFor, options);
  try {
    return await reader.readAll();
  } finally {
    await reader.close();
  }
}
