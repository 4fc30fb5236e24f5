import { createReadStream } from 'node:fs';

/** One line of a trail file; `complete` is false for a last line without its newline (a torn write). */
export interface TrailLine {
  /** 0-based line index. */
  index: number;
  text: string;
  complete: boolean;
}

/** Streams the lines of a file, so verifying a long trail does not hold it all in memory. */
export async function* readTrailLines(file: string): AsyncGenerator<TrailLine, void, undefined> {
  let pending: Buffer[] = [];
  let index = 0;
  const stream = createReadStream(file, { highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        pending.push(chunk.subarray(start, nl));
        yield { index, text: Buffer.concat(pending).toString('utf8'), complete: true };
        index += 1;
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(Buffer.from(chunk.subarray(start)));
    }
    if (pending.length > 0) {
      yield { index, text: Buffer.concat(pending).toString('utf8'), complete: false };
    }
  } finally {
    stream.destroy();
  }
}

/** Number of complete lines (newlines) in a file. */
export async function countTrailLines(file: string): Promise<number> {
  let count = 0;
  const stream = createReadStream(file, { highWaterMark: 64 * 1024 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) count += 1;
  }
  return count;
}
