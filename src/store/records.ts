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

/** A metadata update: the record keeps its vector; `metadata: null` removes its metadata. */
export interface MetadataUpdate<M extends object = Metadata> {
  id: string;
  metadata: M | null;
}

/** A checked metadata update (as {@link CheckedRecord}, without the vector). */
export interface CheckedUpdate {
  id: string;
  meta: Buffer | null;
  metadata: Metadata | undefined;
}

/** Checks a batch of metadata updates whole; duplicate ids in one batch are refused. */
export function checkUpdates(list: unknown[]): CheckedUpdate[] {
  const seen = new Set<string>();
  return list.map((u, i) => {
    const where = `updates[${i}]`;
    let c: CheckedUpdate;
    try {
      if (u === null || typeof u !== 'object') throw new InvalidArgumentError(`${where}: expected an object with id and metadata`);
      const rec = u as { id?: unknown; metadata?: unknown };
      const id = rec.id;
      checkId(id, where);
      const m = rec.metadata;
      if (m === undefined)
        throw new InvalidArgumentError(`${where}: "metadata" expected a plain object or null (null removes it), got undefined`);
      const meta = m === null ? null : encodeMetadata(m, where);
      c = { id, meta, metadata: meta === null ? undefined : (unpack(meta) as Metadata) };
    } catch (err) {
      if (err instanceof VectorsealError) throw err;
      throw new InvalidArgumentError(`${where}: could not be read as an update`, { cause: err });
    }
    if (seen.has(c.id)) throw new InvalidArgumentError(`${where}: "id" appears more than once in the batch`);
    seen.add(c.id);
    return c;
  });
}
