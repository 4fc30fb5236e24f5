import { promises as fs } from 'node:fs';
import { basename, extname } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { SourceRecord, VectorRecord } from '../store/index.js';

const CHUNK_RECORDS = 1000;
const READ_BYTES = 1 << 20;

/**
 * Reads records for `vectorseal import`: JSON Lines of {"id","vector","metadata"}
 * or .fvecs (little-endian: int32 dimension, then that many float32, per
 * vector; ids are "<file stem>-<n>"). Yields chunks of records, each named by
 * file and line (or vector number), and the bytes consumed so far.
 */
export async function* readSource(file: string): AsyncGenerator<{ records: SourceRecord[]; bytes: number }> {
  if (extname(file).toLowerCase() === '.fvecs') yield* readFvecs(file);
  else yield* readJsonl(file);
}

/** Records in batches of `batchSize`, without their positions (the demo's reader). */
export async function* readRecords(file: string, batchSize: number): AsyncGenerator<{ batch: VectorRecord[]; bytes: number }> {
  let batch: VectorRecord[] = [];
  let bytes = 0;
  for await (const chunk of readSource(file)) {
    bytes = chunk.bytes;
    for (const r of chunk.records) {
      batch.push(r.record as VectorRecord);
      if (batch.length >= batchSize) {
        yield { batch, bytes };
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield { batch, bytes };
}

/** Opens an input file, a missing or unreadable one as a typed error naming it. */
export async function openInput(file: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`input file ${file} does not exist`, { cause: err });
    if (code === 'EISDIR') throw new InvalidArgumentError(`input file ${file} is a directory`, { cause: err });
    throw new InvalidArgumentError(`input file ${file} cannot be read (${code ?? 'error'})`, { cause: err });
  }
}

async function* readJsonl(file: string): AsyncGenerator<{ records: SourceRecord[]; bytes: number }> {
  const name = basename(file);
  const handle = await openInput(file);
  // Strict UTF-8: a malformed byte would otherwise become U+FFFD and change an id or a value silently.
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    const buf = Buffer.alloc(READ_BYTES);
    let rest: Buffer = Buffer.alloc(0);
    let line = 0;
    let bytes = 0;
    let records: SourceRecord[] = [];
    const take = (raw: Buffer): void => {
      line++;
      bytes += raw.length + 1;
      let text: string;
      try {
        text = decoder.decode(raw);
      } catch {
        throw new InvalidArgumentError(`${name} line ${line}: not valid UTF-8`);
      }
      if (text.endsWith('\r')) text = text.slice(0, -1);
      if (text.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        throw new InvalidArgumentError(`${name} line ${line}: not valid JSON`);
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new InvalidArgumentError(`${name} line ${line}: expected an object with id and vector`);
      records.push({ record: v, where: `${name} line ${line}` });
    };
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      let data = rest.length > 0 ? Buffer.concat([rest, buf.subarray(0, bytesRead)]) : Buffer.from(buf.subarray(0, bytesRead));
      let nl: number;
      while ((nl = data.indexOf(0x0a)) >= 0) {
        take(data.subarray(0, nl));
        data = data.subarray(nl + 1);
      }
      rest = Buffer.from(data);
      if (records.length >= CHUNK_RECORDS) {
        yield { records, bytes };
        records = [];
      }
    }
    if (rest.length > 0) {
      take(rest);
      bytes -= 1;
    }
    if (records.length > 0 || bytes === 0) yield { records, bytes };
  } finally {
    await handle.close();
  }
}

async function* readFvecs(file: string): AsyncGenerator<{ records: SourceRecord[]; bytes: number }> {
  const name = basename(file);
  const stem = basename(file, extname(file));
  const handle = await openInput(file);
  try {
    const size = (await handle.stat()).size;
    let off = 0;
    let n = 0;
    let records: SourceRecord[] = [];
    const head = Buffer.alloc(4);
    while (off < size) {
      await handle.read(head, 0, 4, off);
      const dim = head.readInt32LE(0);
      if (dim < 1 || dim > 65_536 || off + 4 + dim * 4 > size)
        throw new InvalidArgumentError(`${name} vector ${n}: bad dimension or cut short`);
      const body = Buffer.alloc(dim * 4);
      await handle.read(body, 0, body.length, off + 4);
      const vector = new Float32Array(dim);
      new Uint8Array(vector.buffer).set(body);
      records.push({ record: { id: `${stem}-${n}`, vector }, where: `${name} vector ${n}` });
      off += 4 + dim * 4;
      n++;
      if (records.length >= CHUNK_RECORDS) {
        yield { records, bytes: off };
        records = [];
      }
    }
    yield { records, bytes: off };
  } finally {
    await handle.close();
  }
}
