import { open } from 'node:fs/promises';

/** The end of a trail file, read backwards so opening a long trail stays cheap. */
export type TrailTail =
  | { kind: 'empty' }
  /** The file does not end with a newline: the last write was torn (or the tail cut). */
  | { kind: 'torn' }
  | { kind: 'line'; text: string }
  /** The last line is longer than any entry can be. */
  | { kind: 'oversized' };

const CHUNK = 16 * 1024;
const MAX_LINE = 1024 * 1024;

/** Reads the last complete line of `file`; a missing file counts as empty. */
export async function readTrailTail(file: string): Promise<TrailTail> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'empty' };
    throw err;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return { kind: 'empty' };
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] !== 0x0a) return { kind: 'torn' };
    // Walk back from just before the final newline to the previous one (or the file start).
    const end = size - 1;
    const parts: Buffer[] = [];
    let position = end;
    while (position > 0) {
      const length = Math.min(CHUNK, position);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, position - length);
      const nl = buf.lastIndexOf(0x0a);
      if (nl >= 0) {
        parts.unshift(buf.subarray(nl + 1));
        break;
      }
      parts.unshift(buf);
      position -= length;
      if (end - position > MAX_LINE) return { kind: 'oversized' };
    }
    return { kind: 'line', text: Buffer.concat(parts).toString('utf8') };
  } finally {
    await handle.close();
  }
}

/**
 * The length of `file` up to and including its last newline: what is left
 * when a torn last line (a write cut short by a crash) is dropped.
 */
export async function lengthToLastNewline(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    for (let position = size; position > 0; ) {
      const length = Math.min(CHUNK, position);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, position - length);
      const nl = buf.lastIndexOf(0x0a);
      if (nl >= 0) return position - length + nl + 1;
      position -= length;
    }
    return 0;
  } finally {
    await handle.close();
  }
}
