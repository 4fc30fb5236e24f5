import { describe, expect, it } from 'vitest';
import { CorruptDataError } from '../../src/errors.js';
import { IDS_ONLY_DIM, decodeList, decodeVectorBlock, encodeList, encodeVectorBlock } from '../../src/store/blocks.js';
import { copyMetadata, pack } from '../../src/store/metadata.js';
import { MAX_ID_BYTES } from '../../src/store/validate.js';

/**
 * Unit tests of the plaintext encodings inside segments (src/store/blocks.ts):
 * exact round trips, the format's limits, and the typed error for every
 * truncated, extended or inconsistent block. Segments are sealed, so these
 * errors meet only a writer's bug or a block decrypted with the wrong layout;
 * they must still be CorruptDataError naming the file, never a RangeError.
 */

const FILE = 'seg-000001.vec';

/** The CorruptDataError decoding throws, checked to name the file and the decode stage. */
function decodeError(decode: () => unknown): CorruptDataError {
  let caught: unknown;
  try {
    decode();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'decoding should fail').toBeInstanceOf(CorruptDataError);
  const err = caught as CorruptDataError;
  expect(err.code).toBe('VS_CORRUPT_DATA');
  expect(err.file).toBe(FILE);
  expect(err.reason).toBe('decode');
  return err;
}

function vectorsOf(n: number, dim: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => Float32Array.from({ length: dim }, (_, j) => i * 10 + j + 0.25));
}

function bits(v: Float32Array): number[] {
  return [...new Uint32Array(v.buffer, v.byteOffset, v.length)];
}

describe('vector blocks', () => {
  it('round-trip ids and vectors exactly, in the documented layout', () => {
    const ids = ['a', 'b-2', 'ünïcode', '\u{1F600}pair', 'x'.repeat(300)];
    const vecs = vectorsOf(ids.length, 3);
    const b = encodeVectorBlock(ids, (i) => vecs[i] as Float32Array, 3);
    // u32 count, u32 dim, (u16 length + UTF-8) per id, then count × dim float32 LE.
    const idBytes = ids.reduce((n, id) => n + 2 + Buffer.byteLength(id), 0);
    expect(b.length).toBe(8 + idBytes + ids.length * 3 * 4);
    expect(b.readUInt32LE(0)).toBe(ids.length);
    expect(b.readUInt32LE(4)).toBe(3);
    expect(b.readUInt16LE(8)).toBe(1);
    expect(b.readFloatLE(8 + idBytes)).toBe(0.25);
    const back = decodeVectorBlock(b, 3, FILE);
    expect(back.ids).toEqual(ids);
    expect(back.vectors).toEqual(Float32Array.from(vecs.flatMap((v) => [...v])));
  });

  it('keep every float32 bit pattern: -0, infinities, subnormals, NaN payloads', () => {
    const raw = new Uint32Array([0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff, 0x7fc00001, 0xffffffff, 0x3f800000]);
    const v = new Float32Array(raw.buffer);
    const back = decodeVectorBlock(
      encodeVectorBlock(['one'], () => v, v.length),
      v.length,
      FILE,
    );
    expect(bits(back.vectors as Float32Array)).toEqual([...raw]);
  });

  it('read vectors given as views into a larger buffer, and decode from an unaligned view', () => {
    const big = new Float32Array(20).map((_, i) => i);
    const views = [big.subarray(3, 7), big.subarray(11, 15)];
    const encoded = encodeVectorBlock(['p', 'q'], (i) => views[i] as Float32Array, 4);
    const shifted = Buffer.alloc(encoded.length + 1);
    encoded.copy(shifted, 1);
    const back = decodeVectorBlock(shifted.subarray(1), 4, FILE);
    expect([...(back.vectors as Float32Array)]).toEqual([3, 4, 5, 6, 11, 12, 13, 14]);
  });

  it('decode into memory of their own: zeroing the block afterwards (as callers do) changes nothing decoded', () => {
    const vecs = vectorsOf(2, 2);
    const b = encodeVectorBlock(['k1', 'k2'], (i) => vecs[i] as Float32Array, 2);
    const back = decodeVectorBlock(b, 2, FILE);
    b.fill(0);
    expect(back.ids).toEqual(['k1', 'k2']);
    expect([...(back.vectors as Float32Array)]).toEqual([0.25, 1.25, 10.25, 11.25]);
    // The encoder copies too: changing a source vector after encoding does not reach the block.
    const src = Float32Array.of(1, 2);
    const again = encodeVectorBlock(['s'], () => src, 2);
    src[0] = 9;
    expect(again.readFloatLE(8 + 3)).toBe(1);
  });

  it('the ids-only form (dim 0) has no vectors and decodes for any collection dimension', () => {
    const b = encodeVectorBlock(['a', 'b'], undefined, 8);
    expect(b.readUInt32LE(4)).toBe(IDS_ONLY_DIM);
    expect(b.length).toBe(8 + 3 + 3);
    for (const dim of [1, 8, 4096]) expect(decodeVectorBlock(b, dim, FILE)).toEqual({ ids: ['a', 'b'], vectors: undefined });
  });

  it('empty blocks: no records, in both forms', () => {
    const full = encodeVectorBlock([], () => new Float32Array(4), 4);
    expect(full.length).toBe(8);
    const back = decodeVectorBlock(full, 4, FILE);
    expect(back.ids).toEqual([]);
    expect(back.vectors?.length).toBe(0);
    const idsOnly = encodeVectorBlock([], undefined, 4);
    expect(decodeVectorBlock(idsOnly, 4, FILE)).toEqual({ ids: [], vectors: undefined });
    // An empty id (the store refuses one) still has a length prefix of its own.
    expect(decodeVectorBlock(encodeVectorBlock(['', ''], undefined, 4), 4, FILE).ids).toEqual(['', '']);
  });

  it('the longest ids: MAX_ID_BYTES from the store, 65535 bytes from the u16 length field', () => {
    const storeMax = '\u{1F600}'.repeat(MAX_ID_BYTES / 4);
    expect(Buffer.byteLength(storeMax)).toBe(MAX_ID_BYTES);
    const formatMax = 'é'.repeat(32_767) + 'z';
    expect(Buffer.byteLength(formatMax)).toBe(0xffff);
    const b = encodeVectorBlock([storeMax, formatMax], undefined, 2);
    expect(decodeVectorBlock(b, 2, FILE).ids).toEqual([storeMax, formatMax]);
  });

  it('many records and a wide dimension round-trip', () => {
    const n = 2000;
    const dim = 1536;
    const one = Float32Array.from({ length: dim }, (_, j) => j / 7);
    const ids = Array.from({ length: n }, (_, i) => `id-${i}`);
    const b = encodeVectorBlock(ids, () => one, dim);
    const back = decodeVectorBlock(b, dim, FILE);
    expect(back.ids).toEqual(ids);
    expect(back.vectors?.length).toBe(n * dim);
    expect(back.vectors?.subarray((n - 1) * dim)).toEqual(one);
  });

  it('a vector of the wrong dimension is refused when encoding', () => {
    expect(() => encodeVectorBlock(['a', 'b'], (i) => new Float32Array(i === 0 ? 3 : 2), 3)).toThrow(CorruptDataError);
    expect(() => encodeVectorBlock(['a'], () => new Float32Array(4), 3)).toThrow(/wrong dimension/);
  });

  it('every truncation, and any extra byte, is a CorruptDataError naming the file', () => {
    const vecs = vectorsOf(3, 2);
    const full = encodeVectorBlock(['r1', 'r22', 'r333'], (i) => vecs[i] as Float32Array, 2);
    const blocks = [full, encodeVectorBlock(['r1', 'r22'], undefined, 2)];
    for (const b of blocks) {
      for (let n = 0; n < b.length; n++) decodeError(() => decodeVectorBlock(b.subarray(0, n), 2, FILE));
      for (const extra of [[0], [1, 2, 3, 4]]) decodeError(() => decodeVectorBlock(Buffer.concat([b, Buffer.from(extra)]), 2, FILE));
    }
    expect(decodeError(() => decodeVectorBlock(Buffer.alloc(7), 2, FILE)).message).toMatch(/too short/);
  });

  it('a header that disagrees with the block is refused: another dimension, more or fewer records', () => {
    const vecs = vectorsOf(2, 2);
    const b = encodeVectorBlock(['a', 'b'], (i) => vecs[i] as Float32Array, 2);
    expect(decodeError(() => decodeVectorBlock(b, 3, FILE)).message).toMatch(/another dimension/);
    for (const count of [0, 1, 3, 0xffff]) {
      const changed = Buffer.from(b);
      changed.writeUInt32LE(count, 0);
      decodeError(() => decodeVectorBlock(changed, 2, FILE));
    }
    const dimChanged = Buffer.from(b);
    dimChanged.writeUInt32LE(4, 4);
    decodeError(() => decodeVectorBlock(dimChanged, 4, FILE)); // the same bytes read as 4-dimensional: wrong length
  });

  it('a count claiming 2^32 - 1 records in a short block fails at once instead of allocating for them', () => {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(0xffffffff, 0);
    b.writeUInt32LE(IDS_ONLY_DIM, 4);
    expect(decodeError(() => decodeVectorBlock(b, 2, FILE)).message).toMatch(/ends inside the ids/);
    const longId = Buffer.alloc(12);
    longId.writeUInt32LE(1, 0);
    longId.writeUInt16LE(0xffff, 8);
    expect(decodeError(() => decodeVectorBlock(longId, 2, FILE)).message).toMatch(/ends inside the ids/);
  });

  it('a dimension so large that count × dim × 4 passes 2^32 is still only a length mismatch', () => {
    const b = Buffer.alloc(8 + 3);
    b.writeUInt32LE(1, 0);
    b.writeUInt32LE(0x7fffffff, 4);
    b.writeUInt16LE(1, 8);
    b.write('a', 10);
    expect(decodeError(() => decodeVectorBlock(b, 0x7fffffff, FILE)).message).toMatch(/wrong length/);
  });
});

describe('lists (tombstones, metadata)', () => {
  it('round-trip strings, null entries and metadata exactly', () => {
    const items: unknown[] = ['tomb-1', null, { a: 1, b: [true, null, 'x'], c: { d: 1.5 } }, 'ünï\u{1F600}', [], {}];
    expect(decodeList(encodeList(items), items.length, FILE)).toEqual(items);
    expect(decodeList(encodeList([]), 0, FILE)).toEqual([]);
    expect(decodeList(encodeList(['x', 'y']), undefined, FILE)).toEqual(['x', 'y']); // any count when none is expected
  });

  it('keep -0 (msgpackr alone would write the integer 0), at any depth', () => {
    const back = decodeList(encodeList([-0, 0, { z: -0, n: [-0, 1] }]), 3, FILE) as [number, number, { z: number; n: number[] }];
    expect(Object.is(back[0], -0)).toBe(true);
    expect(Object.is(back[1], 0)).toBe(true);
    expect(Object.is(back[2].z, -0)).toBe(true);
    expect(Object.is(back[2].n[0], -0)).toBe(true);
    // Plain msgpack, for contrast: the sign is gone without the extension.
    expect(Object.is((decodeList(pack([-0]), 1, FILE) as number[])[0], -0)).toBe(false);
  });

  it('keep an own "__proto__" key as a key, without setting any prototype', () => {
    const given = JSON.parse('{"__proto__": {"polluted": 1}, "x": {"__proto__": "inner"}}') as Record<string, unknown>;
    const back = decodeList(encodeList([given]), 1, FILE)[0] as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.hasOwn(back, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toEqual({ polluted: 1 });
    expect(Object.getOwnPropertyDescriptor(back['x'] as object, '__proto__')?.value).toBe('inner');
    expect((back as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    // Metadata as the store holds it, -0 and __proto__ together, the same after the round trip.
    const both = JSON.parse('{"__proto__": -0, "n": [-0]}') as Record<string, unknown>;
    const again = decodeList(encodeList([both]), 1, FILE)[0] as Record<string, unknown>;
    expect(Object.is(Object.getOwnPropertyDescriptor(again, '__proto__')?.value, -0)).toBe(true);
    expect(Object.is((again['n'] as number[])[0], -0)).toBe(true);
    // The checked copy the store makes of given metadata encodes to the same bytes.
    expect(pack(copyMetadata(both, 'test'))).toEqual(encodeList([both]).subarray(1));
  });

  it('every truncation, an extra byte, and bytes that are not msgpack are CorruptDataError naming the file', () => {
    const b = encodeList(['tomb-1', { a: -0, b: 'x' }, JSON.parse('{"__proto__": 1}')]);
    for (let n = 0; n < b.length; n++) decodeError(() => decodeList(b.subarray(0, n), undefined, FILE));
    const extended = decodeError(() => decodeList(Buffer.concat([b, Buffer.from([0xc0])]), undefined, FILE));
    expect(extended.message).toMatch(/does not decode/);
    expect(extended.cause).toBeDefined();
    decodeError(() => decodeList(Buffer.from([0xc1]), undefined, FILE)); // 0xc1 is never used in msgpack
  });

  it('a list of the wrong length or a value that is no list is refused', () => {
    expect(decodeError(() => decodeList(encodeList(['a', 'b']), 3, FILE)).message).toMatch(/wrong number of entries/);
    decodeError(() => decodeList(encodeList(['a', 'b']), 1, FILE));
    decodeError(() => decodeList(encodeList([]), 1, FILE));
    for (const notList of [{ 0: 'a' }, 'a', 7, null]) decodeError(() => decodeList(pack(notList), undefined, FILE));
  });

  it('a malformed __proto__-keyed extension is a CorruptDataError, not a TypeError', () => {
    // ext 0x41 carrying an array of odd length, then one whose key is not a string.
    for (const flat of [['k'], [1, 'v']]) {
      const payload = pack(flat);
      const ext = Buffer.concat([Buffer.from([0xc7, payload.length, 0x41]), payload]);
      const list = Buffer.concat([Buffer.from([0x91]), ext]);
      const err = decodeError(() => decodeList(list, 1, FILE));
      expect(err.cause).toBeInstanceOf(TypeError);
    }
  });
});
