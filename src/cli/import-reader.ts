import { createReadStream, promises as fs } from 'node:fs';
import { basename, extname } from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidArgumentError } from '../errors.js';
import type { VectorRecord } from '../store/index.js';

/**
 * Reads records for `vectorseal import`: JSON Lines of {"id","vector","metadata"}
 * or .fvecs (little-endian: int32 dimension, then that many float32, per
 * vector; ids are "<file stem>-<n>"). Yields batches and the bytes consumed
 * so far, for a progress bar.
 */
export async function* readRecords(file: string, batchSize: number): AsyncGenerator<{ batch: VectorRecord[]; bytes: number }> {
  if (extname(file).toLowerCase() === '.fvecs') yield* readFvecs(file, batchSize);
  else yield* readJsonl(file, batchSize);
}

async function* readJsonl(file: string, batchSize: number): AsyncGenerator<{ batch: VectorRecord[]; bytes: number }> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let batch: VectorRecord[] = [];
  let bytes = 0;
  let n = 0;
  for await (const line of lines) {
    n++;
    bytes += Buffer.byteLength(line) + 1;
    if (line.trim() === '') continue;
    let v: { id?: unknown; vector?: unknown; metadata?: unknown };
    try {
      v = JSON.parse(line) as typeof v;
    } catch {
      throw new InvalidArgumentError(`${basename(file)} line ${n}: not valid JSON`);
    }
    if (v === null || typeof v !== 'object') throw new InvalidArgumentError(`${basename(file)} line ${n}: expected an object with id and vector`);
    batch.push({ id: v.id as string, vector: v.vector as number[], ...(v.metadata === undefined ? {} : { metadata: v.metadata as Record<string, unknown> }) });
    if (batch.length >= batchSize) {
      yield { batch, bytes };
      batch = [];
    }
  }
  if (batch.length > 0) yield { batch, bytes };
}

async function* readFvecs(file: string, batchSize: number): AsyncGenerator<{ batch: VectorRecord[]; bytes: number }> {
  const stem = basename(file, extname(file));
  const size = (await fs.stat(file)).size;
  const handle = await fs.open(file, 'r');
  try {
    let off = 0;
    let n = 0;
    let batch: VectorRecord[] = [];
    const head = Buffer.alloc(4);
    while (off < size) {
      await handle.read(head, 0, 4, off);
      const dim = head.readInt32LE(0);
      if (dim < 1 || dim > 65_536 || off + 4 + dim * 4 > size) throw new InvalidArgumentError(`${basename(file)}: vector ${n} has a bad dimension or is cut short`);
      const body = Buffer.alloc(dim * 4);
      await handle.read(body, 0, body.length, off + 4);
      const vector = new Float32Array(dim);
      new Uint8Array(vector.buffer).set(body);
      batch.push({ id: `${stem}-${n}`, vector });
      off += 4 + dim * 4;
      n++;
      if (batch.length >= batchSize) {
        yield { batch, bytes: off };
        batch = [];
      }
    }
    if (batch.length > 0) yield { batch, bytes: off };
  } finally {
    await handle.close();
  }
}
