import { dirname } from 'node:path';
import { mkdirs } from '../util/durable.js';
import { fileLayer, type DurableFile } from '../util/file-layer.js';

export interface AuditOptions {
  /** File the audit lines are appended to (created with its directory, mode 0600). */
  file: string;
  /** Also write every line to stdout (the CLI does). */
  stdout?: boolean;
}

/** One audit line: what was asked, by whom, on which key, and how it ended. Never key material. */
export interface AuditRecord {
  requestId: string;
  remoteAddress?: string;
  principal?: string;
  accessKeyId?: string;
  operation?: string;
  keyArns?: string[];
  encryptionContext?: Record<string, string>;
  outcome: 'success' | 'denied' | 'error';
  errorType?: string;
  status: number;
  durationMs: number;
}

export interface AuditLog {
  /**
   * Records one entry (serialised now, so later changes to `entry` do not
   * reach the log). `written` runs once the line has been handed to the
   * operating system with write(2), or with the error when that failed: the
   * server answers a request only from there, so an acknowledged request is
   * already on record if the process dies right after.
   */
  record(entry: AuditRecord, written?: (err?: Error) => void): void;
  /** Writes what is pending and closes the file. */
  close(): Promise<void>;
}

/** pino's level number for `info`: the lines keep the shape earlier versions wrote through pino. */
const INFO = 30;

/**
 * The key service's audit trail: one JSON line per request,
 * `{"level":30,"time":"<ISO>","service":"vectorseal-kms","audit":{...},"msg":"<outcome>"}`.
 *
 * Lines are group-committed: every entry recorded during one turn of the
 * event loop is appended with a single write(2) at the end of that turn
 * (setImmediate), and only then are their requests answered. Under load that
 * is one system call for many requests instead of one each; the promise is
 * the one a synchronous write per line gave (in the file before the answer
 * leaves, not fsynced), no weaker.
 */
export async function createAuditLog(options: AuditOptions): Promise<AuditLog> {
  await mkdirs(dirname(options.file), 0o700);
  let file: DurableFile | undefined = fileLayer().openSync(options.file, 'appendCreate', 0o600);
  let pending: string[] = [];
  let waiting: ((err?: Error) => void)[] = [];
  let scheduled = false;

  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const lines = pending;
    const callbacks = waiting;
    pending = [];
    waiting = [];
    let failure: Error | undefined;
    try {
      if (file === undefined) throw new Error('the audit log is closed');
      const data = Buffer.from(lines.join(''), 'utf8');
      // One write(2) for the whole turn's lines (the layer loops over a short write).
      file.writeSync(data);
      if (options.stdout) process.stdout.write(data);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    for (const cb of callbacks) cb(failure);
  };

  // The time has millisecond resolution: one formatted string serves every line of the same millisecond.
  let timeMs = -1;
  let timeText = '';
  return {
    record(entry, written) {
      const now = Date.now();
      if (now !== timeMs) {
        timeMs = now;
        timeText = new Date(now).toISOString();
      }
      const audit = JSON.stringify(entry);
      pending.push(`{"level":${INFO},"time":"${timeText}","service":"vectorseal-kms","audit":${audit},"msg":"${entry.outcome}"}\n`);
      if (written !== undefined) waiting.push(written);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    async close() {
      flush();
      file?.closeSync();
      file = undefined;
    },
  };
}
