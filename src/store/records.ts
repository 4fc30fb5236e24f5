import { InvalidArgumentError, VectorsealError } from '../errors.js';
import { encodeMetadata, unpack, type Metadata } from './metadata.js';
import { checkId, toVector } from './validate.js';

/** One record of an upsert batch, checked and copied. */
export interface CheckedRecord {
  id: string;
  vector: Float32Array;
  /** The encoded metadata (the caller zeroes it once written), or null. */
  meta: Buffer | null;
  /** The metadata as it will be stored: decoded from `meta`, so memory equals disk. */
  metadata: Metadata | undefined;
}

/**
 * Checks and copies one record, reading each of its fields exactly once (a
 * getter cannot answer differently the second time). Anything the record
 * throws while being read becomes an InvalidArgumentError naming `where`.
 */
export function checkRecord(r: unknown, dim: number, space: string, where: string): CheckedRecord {
  try {
    if (r === null || typeof r !== 'object') throw new InvalidArgumentError(`${where}: expected an object with id and vector`);
    const rec = r as { id?: unknown; vector?: unknown; metadata?: unknown };
    const id = rec.id;
    checkId(id, where);
    const vector = toVector(rec.vector, dim, where, space);
    const m = rec.metadata;
    const meta = m === undefined ? null : encodeMetadata(m, where);
    return { id, vector, meta, metadata: meta === null ? undefined : (unpack(meta) as Metadata) };
  } catch (err) {
    if (err instanceof VectorsealError) throw err;
    throw new InvalidArgumentError(`${where}: could not be read as a record`, { cause: err });
  }
}

/** Checks an upsert batch whole; duplicate ids in one batch are refused. */
export function checkBatch(list: unknown[], dim: number, space: string): CheckedRecord[] {
  const seen = new Set<string>();
  return list.map((r, i) => {
    const where = `records[${i}]`;
    const c = checkRecord(r, dim, space, where);
    if (seen.has(c.id)) throw new InvalidArgumentError(`${where}: "id" appears more than once in the batch`);
    seen.add(c.id);
    return c;
  });
}
