import { CorruptDataError } from '../errors.js';
import { pack, unpack } from './metadata.js';

/**
 * In-memory encodings of the plaintext inside segments. Nothing here touches
 * a file: the caller seals the bytes and zeroes them.
 *
 * Vector block: u32 count, u32 dim, then per record u16 id length + UTF-8 id,
 * then count × dim float32 little-endian.
 */
export interface VectorBlock {
  ids: string[];
  /** count × dim components. */
  vectors: Float32Array;
}

export function encodeVectorBlock(ids: string[], vectors: Float32Array[], dim: number): Buffer {
  const idBytes = ids.map((id) => Buffer.from(id, 'utf8'));
  const idsLength = idBytes.reduce((n, b) => n + 2 + b.length, 0);
  const out = Buffer.alloc(8 + idsLength + ids.length * dim * 4);
  out.writeUInt32LE(ids.length, 0);
  out.writeUInt32LE(dim, 4);
  let off = 8;
  for (const b of idBytes) {
    out.writeUInt16LE(b.length, off);
    b.copy(out, off + 2);
    off += 2 + b.length;
  }
  for (const v of vectors) {
    Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(out, off);
    off += v.byteLength;
  }
  return out;
}

export function decodeVectorBlock(b: Buffer, dim: number, file: string): VectorBlock {
  const bad = (why: string): never => {
    throw new CorruptDataError(`vector block ${why}`, { file, reason: 'decode' });
  };
  if (b.length < 8) bad('is too short');
  const count = b.readUInt32LE(0);
  if (b.readUInt32LE(4) !== dim) bad('has another dimension than the collection');
  const ids: string[] = [];
  let off = 8;
  for (let i = 0; i < count; i++) {
    if (off + 2 > b.length) bad('ends inside the ids');
    const n = b.readUInt16LE(off);
    if (off + 2 + n > b.length) bad('ends inside the ids');
    ids.push(b.toString('utf8', off + 2, off + 2 + n));
    off += 2 + n;
  }
  if (b.length - off !== count * dim * 4) bad('has the wrong length');
  const vectors = new Float32Array(count * dim);
  new Uint8Array(vectors.buffer).set(b.subarray(off));
  return { ids, vectors };
}

/** A list of strings (tombstones) or of metadata values, msgpackr-encoded. */
export function encodeList(items: unknown[]): Buffer {
  return pack(items);
}

export function decodeList(b: Buffer, count: number | undefined, file: string): unknown[] {
  let v: unknown;
  try {
    v = unpack(b);
  } catch (err) {
    throw new CorruptDataError('block does not decode', { file, reason: 'decode', cause: err });
  }
  if (!Array.isArray(v) || (count !== undefined && v.length !== count)) {
    throw new CorruptDataError('block has the wrong number of entries', { file, reason: 'decode' });
  }
  return v;
}
