import { closeSync, fstatSync, openSync, promises as fs, readSync, writeFileSync } from 'node:fs';
import { sharedBuffer } from '../crypto/pool.js';
import type { Staging } from '../storage/staging.js';
import { crashPoint } from '../util/crash.js';
import { emptyIndex, type HnswIndex, type IndexParams } from './layer.js';

/**
 * hnswlib serializes only to a path: these go through a staging file on a
 * RAM-backed file system that is unlinked as soon as it has been read, so the
 * plaintext graph never reaches a disk. The returned/accepted buffers hold
 * plaintext: callers seal and zero them.
 *
 * The staging file is read and written in one go (a RAM file system: no I/O
 * to wait for), and read into shared memory so that the worker pool seals it
 * without another copy.
 */
export async function serializeIndex(index: HnswIndex, staging: Staging): Promise<Buffer> {
  return staging.withFile(async (path) => {
    index.writeIndexSync(path);
    crashPoint('index:staged');
    const fd = openSync(path, 'r');
    let bytes: Buffer;
    try {
      const size = fstatSync(fd).size;
      bytes = sharedBuffer(size);
      let off = 0;
      for (let n = 1; off < size && n > 0; off += n) n = readSync(fd, bytes, off, size - off, off);
      bytes = bytes.subarray(0, off);
    } finally {
      closeSync(fd);
    }
    await fs.rm(path, { force: true });
    return bytes;
  });
}

export async function deserializeIndex(bytes: Buffer, params: IndexParams, staging: Staging): Promise<HnswIndex> {
  return staging.withFile(async (path) => {
    const index = emptyIndex(params);
    try {
      writeFileSync(path, bytes, { mode: 0o600 });
      index.readIndexSync(path, false);
    } finally {
      await fs.rm(path, { force: true });
    }
    return index;
  });
}
