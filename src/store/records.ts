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
 * Checks an upsert batch whole, reading each field of each record exactly
 * once (a getter cannot answer differently the second time). Anything a
 * record throws while being read becomes an InvalidArgumentError naming the
 * record; duplicate ids in one batch are refused.
 */
export function checkBatch(list: unknown[], dim: number, space: string): CheckedRecord[] {
  const seen = new Set<string>();
  const checked: CheckedRecord[] = [];
  list.forEach((r, i) => {
    const where = `records[${i}]`;
    let id: unknown;
    let vector: Float32Array;
    let meta: Buffer | null;
    try {
      if (r === null || typeof r !== 'object') throw new InvalidArgumentError(`${where}: expected an object with id and vector`);
      const rec = r as { id?: unknown; vector?: unknown; metadata?: unknown };
      id = rec.id;
      checkId(id, where);
      vector = toVector(rec.vector, dim, where, space);
      const m = rec.metadata;
      meta = m === undefined ? null : encodeMetadata(m, where);
    } catch (err) {
      if (err instanceof VectorsealError) throw err;
      throw new InvalidArgumentError(`${where}: could not be read as a record`, { cause: err });
    }
    if (seen.has(id as string)) throw new InvalidArgumentError(`${where}: "id" appears more than once in the batch`);
    seen.add(id as string);
    checked.push({ id: id as string, vector, meta, metadata: meta === null ? undefined : (unpack(meta) as Metadata) });
  });
  return checked;
}
