import { InvalidArgumentError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import type { Collection, VectorRecord } from './collection.js';
import { pack, toWire } from './metadata.js';
import { checkRecord } from './records.js';

/** One record read from an import source, with where it came from ("data.jsonl line 12"). */
export interface SourceRecord {
  record: unknown;
  /** Names the file and line (or vector) in every error about this record. */
  where: string;
}

/** Reads the source from its start; called once per pass (it must give the same records each time). */
export type ImportSource = () => AsyncIterable<{ records: SourceRecord[]; bytes: number }>;

export interface ImportProgress {
  /** 'check' reads the whole source and checks every record; 'write' writes them. */
  phase: 'check' | 'write';
  /** Records read so far in this phase. */
  records: number;
  /** Records in the source ('write' only: the check counted them). */
  total: number | undefined;
  /** Bytes of the source read so far. */
  bytes: number;
}

/** Where a stopped import got to: every record up to `where` is committed. */
export interface ImportStop {
  /** The last record committed ("data.jsonl line 4000"), or undefined when none was. */
  where: string | undefined;
  /** Records committed before the stop. */
  committed: number;
}

export interface ImportOptions {
  /** Records per upsert (default 1000). */
  batchSize?: number;
  /**
   * Continue a stopped import: records already stored exactly as the source
   * has them are skipped, the rest written. Safe to use on any import: the
   * result is the same as one clean import.
   */
  resume?: boolean;
  onProgress?: (p: ImportProgress) => void;
  /** Called between the two passes, before anything is written (the CLI checks the file did not change). */
  beforeWrite?: () => Promise<void>;
  /** Told where the import stopped when the write phase fails; the error is then rethrown. */
  onStopped?: (stop: ImportStop) => void;
}

export interface ImportReport {
  /** Records in the source, duplicates included. */
  records: number;
  /** Distinct ids in the source. */
  ids: number;
  /** Records whose id occurs again later in the source: not written (the last one wins). */
  duplicates: number;
  /** Records written (the last of each id). */
  written: number;
  /** Records skipped by `resume` (already stored exactly). */
  skipped: number;
}

/**
 * Imports records into a collection in two passes. The first reads the whole
 * source and checks every record (id, vector, metadata) without writing
 * anything, so a bad record anywhere commits nothing, and its error names the
 * file and line. The second writes the records in batches, each durable once
 * its upsert resolves, then flushes. A failure while writing (a full disk, a
 * key provider gone, a killed process) leaves the records before a known
 * point committed: `resume` continues from there.
 *
 * Duplicate ids within the source follow one rule: the last one wins, as in
 * an upsert stream.
 */
export async function importRecords(col: Collection, source: ImportSource, options: ImportOptions = {}): Promise<ImportReport> {
  const batchSize = options.batchSize ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000)
    throw new InvalidArgumentError(`"batchSize" expected an integer in 1..100000, got ${String(batchSize)}`);
  const { dim, space } = col.stats();

  // Where each id occurs last: only that record is written (the last one wins), so an
  // earlier one never overwrites it, in a first run or in a resumed one.
  const last = new Map<string, number>();
  let records = 0;
  for await (const chunk of source()) {
    for (const s of chunk.records) {
      const c = checkRecord(s.record, dim, space, s.where);
      c.meta?.fill(0);
      last.set(c.id, records);
      records++;
    }
    options.onProgress?.({ phase: 'check', records, total: undefined, bytes: chunk.bytes });
  }
  await options.beforeWrite?.();

  let written = 0;
  let skipped = 0;
  let read = 0;
  let committedWhere: string | undefined;
  let committed = 0;
  let batch: VectorRecord[] = [];
  let batchLast: string | undefined;
  const writeBatch = async (): Promise<void> => {
    if (batch.length === 0) return;
    await col.upsert(batch);
    written += batch.length;
    committed = read;
    committedWhere = batchLast;
    batch = [];
    crashPoint('import:batch-committed');
  };
  try {
    for await (const chunk of source()) {
      for (const s of chunk.records) {
        const index = read++;
        const r = s.record as VectorRecord;
        if (last.get(r.id) !== index) continue;
        if (options.resume && storedExactly(col, s, dim, space)) {
          skipped++;
          continue;
        }
        batchLast = s.where;
        batch.push(r);
        if (batch.length >= batchSize) await writeBatch();
      }
      options.onProgress?.({ phase: 'write', records: read, total: records, bytes: chunk.bytes });
    }
    await writeBatch();
    if (read !== records)
      throw new InvalidArgumentError(`the source changed while it was imported: ${records} records when checked, ${read} when written`);
    await col.flush();
  } catch (err) {
    options.onStopped?.({ where: committedWhere, committed });
    throw err;
  }
  return { records, ids: last.size, duplicates: records - last.size, written, skipped };
}

/** Whether the collection already holds this record exactly (vector bytes and encoded metadata). */
function storedExactly(col: Collection, s: SourceRecord, dim: number, space: string): boolean {
  const c = checkRecord(s.record, dim, space, s.where);
  try {
    const stored = col.get(c.id);
    if (!stored) return false;
    const a = Buffer.from(stored.vector.buffer, stored.vector.byteOffset, stored.vector.byteLength);
    const b = Buffer.from(c.vector.buffer, c.vector.byteOffset, c.vector.byteLength);
    if (!a.equals(b)) return false;
    if (stored.metadata === undefined || c.meta === null) return stored.metadata === undefined && c.meta === null;
    const m = pack(toWire(stored.metadata));
    const same = m.equals(c.meta);
    m.fill(0);
    return same;
  } finally {
    c.meta?.fill(0);
  }
}
