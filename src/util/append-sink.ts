import { EventEmitter } from 'node:events';
import { fileLayer, type DurableFile } from './file-layer.js';

/**
 * A pino destination that appends each line to a file through the file
 * layer, synchronously: a line is in the file (not yet durable) when
 * `write` returns, and `fsync` makes every line so far durable. It replaces
 * pino's own file destination, whose writes would bypass the file layer.
 */
export class AppendSink extends EventEmitter {
  private file: DurableFile | undefined;

  constructor(
    readonly path: string,
    mode = 0o600,
  ) {
    super();
    this.file = fileLayer().openSync(path, 'appendCreate', mode);
  }

  /** Appends one chunk; a failure is emitted as 'error' (pino does not look at a return value). */
  write(chunk: string | Uint8Array): boolean {
    try {
      if (this.file === undefined) throw new Error(`${this.path} is closed`);
      this.file.writeSync(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    } catch (err) {
      this.emit('error', err);
    }
    return true;
  }

  /** Every line is written when `write` returns: nothing to wait for. */
  flush(cb?: (err?: Error) => void): void {
    cb?.();
  }

  /** Makes every line written so far durable. */
  async fsync(): Promise<void> {
    await this.file?.fsync();
  }

  /** Closes the file and emits 'close'. */
  end(): void {
    const file = this.file;
    this.file = undefined;
    try {
      file?.closeSync();
    } catch (err) {
      this.emit('error', err);
    }
    process.nextTick(() => this.emit('close'));
  }
}
