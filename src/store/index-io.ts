import { promises as fs } from 'node:fs';
import type { Staging } from '../storage/staging.js';
import { crashPoint } from '../util/crash.js';
import { emptyIndex, type HnswIndex, type IndexParams } from './layer.js';

/**
 * hnswlib serializes only to a path: these go through a staging file on a
 * RAM-backed file system that is unlinked as soon as it has been read, so the
 * plaintext graph never reaches a disk. The returned/accepted buffers hold
 * plaintext: callers seal and zero them.
 */
export async function serializeIndex(index: HnswIndex, staging: Staging): Promise<Buffer> {
  return staging.withFile(async (path) => {
    index.writeIndexSync(path);
    crashPoint('index:staged');
    const bytes = await fs.readFile(path);
    await fs.rm(path, { force: true });
    return bytes;
  });
}

export async function deserializeIndex(bytes: Buffer, params: IndexParams, staging: Staging): Promise<HnswIndex> {
  return staging.withFile(async (path) => {
    await fs.writeFile(path, bytes, { mode: 0o600 });
    const index = emptyIndex(params);
    try {
      index.readIndexSync(path, false);
    } finally {
      await fs.rm(path, { force: true });
    }
    return index;
  });
}
