import { CorruptDataError } from '../errors.js';
import { pack, toWire, unpack } from './metadata.js';

/**
 * In-memory encodings of the plaintext inside segments. Nothing here touches
 * a file: the caller seals the bytes and zeroes them.
 *
 * Vector block: u32 count, u32 dim, then per record u16 id length + UTF-8 id,
 * then count × dim float32 little-endian. A dim of 0 marks the ids-only form
 * (no vectors follow): the segment's HNSW index holds the exact vectors
 * (spaces 'l2' and 'ip'), so they are not stored twice. Readers accept both.
 */
export interface VectorBlock {
  ids: string[];
  /** count × dim components; undefined in the ids-only form (vectors are in the index). */
  vectors: Float32Array | undefined;
}

/** The dim field of an ids-only vector block. */
export const IDS_ONLY_DIM = 0;

/** Encodes a vector block; with `vectorOf` undefined, the ids-only form. */
export function encodeVectorBlock(ids: string[], vectorOf: ((i: number) => Float32Array) | undefined, dim: number): Buffer {
  const idBytes = ids.map((id) => Buffer.from(id, 'utf8'));
  const idsLength = idBytes.reduce((n, b) => n + 2 + b.length, 0);
  const out = Buffer.alloc(8 + idsLength + (vectorOf ? ids.length * dim * 4 : 0));
  out.writeUInt32LE(ids.length, 0);
  out.writeUInt32LE(vectorOf ? dim : IDS_ONLY_DIM, 4);
  let off = 8;
  for (const b of idBytes) {
    out.writeUInt16LE(b.length, off);
    b.copy(out, off + 2);
    off += 2 + b.length;
  }
  if (vectorOf) {
    for (let i = 0; i < ids.length; i++) {
      const v = vectorOf(i);
      if (v.length !== dim) throw new CorruptDataError('vector of the wrong dimension in a layer', { reason: 'decode' });
      out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), off);
      off += v.byteLength;
    }
  }
  return out;
}

export function decodeVectorBlock(b: Buffer, dim: number, file: string): VectorBlock {
  const bad = (why: string): never => {
    throw new CorruptDataError(`vector block ${why}`, { file, reason: 'decode' });
  };
  if (b.length < 8) bad('is too short');
  const count = b.readUInt32LE(0);
  const blockDim = b.readUInt32LE(4);
  if (count > (b.length - 8) / 2) bad('ends inside the ids');
  if (blockDim !== dim && blockDim !== IDS_ONLY_DIM) bad('has another dimension than the collection');
  const ids: string[] = new Array<string>(count);
  let off = 8;
  for (let i = 0; i < count; i++) {
    if (off + 2 > b.length) bad('ends inside the ids');
    const n = b.readUInt16LE(off);
    if (off + 2 + n > b.length) bad('ends inside the ids');
    ids[i] = b.toString('utf8', off + 2, off + 2 + n);
    off += 2 + n;
  }
  if (blockDim === IDS_ONLY_DIM) {
    if (b.length !== off) bad('has the wrong length');
    return { ids, vectors: undefined };
  }
  if (b.length - off !== count * dim * 4) bad('has the wrong length');
  const vectors = new Float32Array(count * dim);
  new Uint8Array(vectors.buffer).set(b.subarray(off));
  return { ids, vectors };
}

/** A list of strings (tombstones) or of metadata values, msgpackr-encoded. */
export function encodeList(items: unknown[]): Buffer {
  // Metadata in memory holds -0 and own __proto__ keys as given: toWire keeps them exact.
  return pack(items.map(toWire));
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
