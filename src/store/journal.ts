import type { WalWriter } from '../storage/wal.js';

type Item =
  | { kind: 'record'; payload: Buffer; apply: () => void; resolve: () => void; reject: (e: unknown) => void }
  | { kind: 'control'; fn: () => Promise<void>; resolve: () => void; reject: (e: unknown) => void };

/**
 * Orders a collection's writes: records go to the WAL in the order they were
 * submitted, several batches share one write and one fsync (group commit),
 * and each batch is applied to memory right after it is durable and before
 * its promise resolves. Control steps (switching to a new WAL file when a
 * flush freezes the memtable) run between batches, never inside one.
 */
export class Journal {
  private queue: Item[] = [];
  private running = false;
  private failure: unknown;

  private writer: WalWriter | undefined;

  /**
   * `openFile` creates the next WAL file; it is called on the first append
   * after the journal starts or a file ends, so reads alone create no file.
   */
  constructor(private readonly openFile: () => Promise<WalWriter>) {}

  /** The WAL file being appended to, if one was created since the last {@link endFile}. */
  get current(): WalWriter | undefined {
    return this.writer;
  }

  /** Makes `payload` durable, then runs `apply`; resolves after both. */
  append(payload: Buffer, apply: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'record', payload, apply, resolve, reject });
      this.kick();
    });
  }

  /** Runs `fn` once every batch submitted before it is durable and applied. */
  control<T>(fn: (journal: Journal) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let out: T;
      this.queue.push({
        kind: 'control',
        fn: async () => {
          out = await fn(this);
        },
        resolve: () => resolve(out),
        reject,
      });
      this.kick();
    });
  }

  /**
   * Ends the current WAL file (call only from a control step): the next
   * append creates a new one. Returns the ended writer's seal, if there was
   * a file (undefined seal: an append to it failed part-way).
   */
  async endFile(): Promise<{ ended: boolean; seal: ReturnType<WalWriter['seal']> }> {
    const w = this.writer;
    if (w === undefined) return { ended: false, seal: undefined };
    this.writer = undefined;
    const seal = w.seal();
    await w.close();
    return { ended: true, seal };
  }

  /** Waits for everything queued so far. */
  async drain(): Promise<void> {
    await this.control(async () => undefined);
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0] as Item;
        if (head.kind === 'control') {
          this.queue.shift();
          try {
            await head.fn();
            head.resolve();
          } catch (err) {
            head.reject(err);
          }
          continue;
        }
        let n = 0;
        while (n < this.queue.length && (this.queue[n] as Item).kind === 'record') n++;
        const batch = this.queue.splice(0, n) as Extract<Item, { kind: 'record' }>[];
        if (this.failure !== undefined) {
          for (const b of batch) b.reject(this.failure);
          continue;
        }
        try {
          this.writer ??= await this.openFile();
        } catch (err) {
          // Nothing was written: these batches fail, later ones try again.
          for (const b of batch) b.reject(err);
          continue;
        }
        try {
          await this.writer.append(batch.map((b) => b.payload));
        } catch (err) {
          // The file's tail is now unknown: refuse further appends to it.
          this.failure = err;
          for (const b of batch) b.reject(err);
          continue;
        }
        for (const b of batch) {
          b.payload.fill(0);
          b.apply();
          b.resolve();
        }
      }
    } finally {
      this.running = false;
    }
  }
}
