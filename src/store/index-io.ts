import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Staging } from '../storage/staging.js';
import { crashPoint } from '../util/crash.js';
import { removeFile } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';
import { CorruptDataError } from '../errors.js';
import { type GraphLoader, HnswlibGraph, NativeGraph } from '../hnsw/index.js';
import type { HnswIndex, IndexParams } from './layer.js';

/**
 * hnswlib serializes only to a path: these go through a staging file on a
 * RAM-backed file system that is unlinked as soon as it has been read, so the
 * plaintext graph never reaches a disk. The plaintext streams between the
 * staging file and the segment through one reused 1 MiB buffer (zeroed at
 * the end): the whole graph is never held in a JavaScript buffer as well.
 */
const BATCH = 1024 * 1024;

/**
 * Serializes `index` and hands its bytes to `consume` as an async iterable of
 * batches (a reused buffer: the consumer copies what it keeps, e.g. seals it).
 */
export async function withSerializedIndex<T>(
  index: HnswIndex,
  staging: Staging,
  consume: (bytes: AsyncIterable<Uint8Array>) => Promise<T>,
): Promise<T> {
  return staging.withFile(async (path) => {
    index.writeIndexSync(path);
    crashPoint('index:staged');
    const fd = openSync(path, 'r');
    const buf = Buffer.allocUnsafe(BATCH);
    try {
      const size = fstatSync(fd).size;
      async function* batches(): AsyncGenerator<Uint8Array> {
        for (let off = 0; off < size; ) {
          const n = readSync(fd, buf, 0, Math.min(BATCH, size - off), off);
          if (n === 0) return;
          off += n;
          yield buf.subarray(0, n);
        }
      }
      return await consume(batches());
    } finally {
      buf.fill(0);
      closeSync(fd);
      await removeFile(path);
    }
  });
}

/**
 * Hands the bytes of a staging file (a graph the build worker serialized) to
 * `consume` in batches of up to `batch` bytes, through one reused buffer
 * that is zeroed at the end. The caller removes the file.
 */
export async function readStaged<T>(path: string, batch: number, consume: (bytes: AsyncIterable<Uint8Array>) => Promise<T>): Promise<T> {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(batch, size)));
  try {
    async function* batches(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < size; ) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - off), off);
        if (n === 0) return;
        off += n;
        yield buf.subarray(0, n);
      }
    }
    return await consume(batches());
  } finally {
    buf.fill(0);
    closeSync(fd);
  }
}

/**
 * Loads an index whose serialized bytes `produce` writes, in order, into the
 * sink it is given; hnswlib reads the staging file only once `produce` has
 * resolved (for a segment: once its hash has been checked). The load runs on
 * the thread pool (hnswlib's asynchronous readIndex) while `beside` runs on
 * this thread (the group's other blocks are decrypted and decoded meanwhile).
 */
export async function deserializeIndex<T>(
  produce: (sink: (bytes: Uint8Array) => void) => Promise<void>,
  params: IndexParams,
  staging: Staging,
  beside: () => Promise<T>,
): Promise<{ index: HnswlibGraph; beside: T }> {
  return staging.withFile(async (path) => {
    try {
      const file = fileLayer().openSync(path, 'truncate', 0o600);
      try {
        await produce((bytes) => file.writeSync(bytes));
      } finally {
        file.closeSync();
      }
      const index = HnswlibGraph.empty(params);
      const loading = index.raw.readIndex(path, false);
      // Awaited below on every path: never an unhandled rejection.
      loading.catch(() => undefined);
      let other: T;
      try {
        other = await beside();
      } catch (err) {
        await loading.catch(() => undefined);
        throw err;
      }
      await loading;
      return { index, beside: other };
    } finally {
      await removeFile(path);
    }
  });
}

/**
 * Loads an index whose serialized bytes `produce` streams (the native addon:
 * no staging file, no whole-graph buffer). `produce` calls `open` with the
 * plaintext length, then hands the bytes in order to the sink it returns;
 * each batch is copied at once into the graph's own memory, so the caller's
 * buffer is reused and zeroed as it wishes. The graph's levels and links are
 * checked and the graph handed out only once `produce` has resolved (for a
 * segment: once its hash has been checked). `beside` runs meanwhile (the
 * group's other blocks are decrypted and decoded between the reads).
 */
export async function loadIndexStreamed<T>(
  produce: (open: (total: number) => (bytes: Uint8Array) => void) => Promise<void>,
  params: IndexParams,
  file: string,
  beside: () => Promise<T>,
): Promise<{ index: NativeGraph; beside: T }> {
  let loader: GraphLoader | undefined;
  const produced = produce((total) => {
    const l = NativeGraph.loader(params, total, file);
    loader = l;
    return (bytes) => l.push(bytes);
  });
  const [p, b] = await Promise.allSettled([produced, beside()]);
  if (p.status === 'rejected' || b.status === 'rejected' || !loader) {
    loader?.abort();
    if (p.status === 'rejected') throw p.reason;
    if (b.status === 'rejected') throw b.reason;
    throw new CorruptDataError('the index segment was never read', { file, reason: 'missing' });
  }
  return { index: await loader.end(), beside: b.value };
}
