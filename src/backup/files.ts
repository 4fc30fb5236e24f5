import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { mkdirDurable as mkdirChainDurable, openDurable, writeFileDurable } from '../util/durable.js';

const BLOCK = 1 << 20;

/** SHA-256 (hex) and length of a file. */
export async function hashFile(path: string): Promise<{ sha256: string; length: number }> {
  const h = createHash('sha256');
  const handle = await fs.open(path, constants.O_RDONLY);
  const buf = Buffer.allocUnsafe(BLOCK);
  let length = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, BLOCK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      length += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { sha256: h.digest('hex'), length };
}

/**
 * Copies `src` to a new file `dest` (which must not exist), hashing the bytes
 * as they are written, and fsyncs it. Returns what was written: the caller
 * compares it with what it expected, so a file changed between a check and
 * the copy is still caught.
 */
export async function copyHashed(src: string, dest: string, mode = 0o600, limit = Infinity): Promise<{ sha256: string; length: number }> {
  const h = createHash('sha256');
  const input = await fs.open(src, constants.O_RDONLY);
  let output;
  try {
    output = await openDurable(dest, 'create', mode);
  } catch (err) {
    await input.close();
    throw err;
  }
  const buf = Buffer.allocUnsafe(BLOCK);
  let length = 0;
  try {
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, Math.min(BLOCK, limit - length), null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      h.update(chunk);
      await output.write(chunk);
      length += bytesRead;
    }
    await output.fsync();
  } finally {
    await input.close();
    await output.close();
  }
  return { sha256: h.digest('hex'), length };
}

/** Writes bytes to a new file and fsyncs it and its directory (a snapshot's manifest lists it as present). */
export async function writeNew(dest: string, data: Uint8Array, mode = 0o600): Promise<void> {
  await writeFileDurable(dest, data, mode);
}

/** A temp name beside `path` (dot-prefixed, `.tmp` suffix). */
export function tempBeside(path: string): string {
  return join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
}

export interface TreeEntry {
  /** Relative to the root, with '/' separators. */
  path: string;
  kind: 'file' | 'dir' | 'other';
}

/** Every entry under `root` (files, directories, and anything else such as symlinks), depth first. */
export async function walkTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const abs = join(dir, e.name);
      const rel = relative(root, abs).split(sep).join('/');
      if (e.isDirectory()) {
        out.push({ path: rel, kind: 'dir' });
        await walk(abs);
      } else {
        out.push({ path: rel, kind: e.isFile() ? 'file' : 'other' });
      }
    }
  };
  await walk(root);
  return out;
}

/** Creates directories (mode 0700) and fsyncs the parent of each one made (every level, not only the first). */
export async function mkdirDurable(dir: string): Promise<void> {
  await mkdirChainDurable(dir, 0o700);
}

/** Whether `dir` does not exist or is an empty directory. */
export async function isAbsentOrEmpty(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}
