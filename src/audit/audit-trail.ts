import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import { AppendSink } from '../util/append-sink.js';
import { fsyncDir, mkdirDurable } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';
import { AuditWriteError, ClosedError, CorruptDataError, RollbackError } from '../errors.js';
import { deriveAuditMacKey } from './audit-key.js';
import {
  AUDIT_FORMAT_VERSION,
  type AuditEntry,
  type AuditEvent,
  type AuditHead,
  CHECKPOINT_ACTION,
  TRAIL_OPEN_ACTION,
  entryMac,
  entryMacValid,
  genesisMac,
  isCloseCheckpoint,
  parseEntry,
} from './entry.js';
import { countTrailLines } from './line-reader.js';
import { REDACT_PATHS, sanitizeEvent } from './redaction.js';
import { lengthToLastNewline, readTrailTail } from './tail.js';

export interface AuditTrailOptions {
  /** The trail file; created (mode 0600, with its directory) if missing, appended to otherwise. */
  file: string;
  /** The 32-byte audit key; the MAC key is derived from it with HKDF ("vectorseal/audit/v1"). The caller keeps and zeroes it. */
  macKey: Uint8Array;
  /** A second destination that receives the same lines (a log shipper, stdout). Not closed by `close()`. */
  extraDestination?: DestinationStream | NodeJS.WritableStream;
  /**
   * Write each entry to the file before `record()` returns (default true): an
   * acknowledged key operation is on record even if the process dies next.
   * With false, entries are buffered and written asynchronously; `flush()` waits.
   */
  sync?: boolean;
  /** Principal recorded on entries whose event names none (the identity the application opened the store as). */
  principal?: string;
  /**
   * A head recorded elsewhere (the store's authenticated state): the trail
   * must reach it, so a trail cut back (or deleted) is refused on open with
   * a RollbackError naming the file. Entries past it are fine (written after
   * the head was recorded, before a crash).
   */
  expectHead?: AuditHead;
}

interface ChainState {
  trail: string;
  nextSeq: number;
  prev: string;
  resumed: { seq: number; closed: boolean } | undefined;
}

/**
 * A tamper-evident, append-only audit trail: JSON lines written with pino,
 * each carrying `seq`, the MAC of the previous entry (`prev`) and its own
 * HMAC-SHA-256 (`mac`) over a canonical encoding. Changing, removing, adding
 * or moving an entry breaks the chain; `close()` ends the trail with a
 * checkpoint entry and `head()` gives the last seq and MAC to keep elsewhere,
 * so a cut tail is caught too (see `verifyAuditTrail`).
 *
 * `record()` is synchronous: entries get their seq and MAC in call order, so
 * any number of callers may record without awaiting each other. One process
 * writes a trail at a time (the store's lock guarantees it).
 */
export class AuditTrail {
  readonly file: string;
  readonly trailId: string;
  private key: Buffer;
  private readonly logger: Logger;
  private readonly destination: AppendSink;
  private readonly principal: string | undefined;
  private nextSeq: number;
  private prev: string;
  private last: AuditHead | undefined;
  private failure: Error | undefined;
  private closing: Promise<AuditHead> | undefined;

  private constructor(options: AuditTrailOptions, key: Buffer, state: ChainState) {
    this.file = options.file;
    this.key = key;
    this.trailId = state.trail;
    this.nextSeq = state.nextSeq;
    this.prev = state.prev;
    this.principal = options.principal;
    // Every line is appended through the file layer before record() returns, whatever `sync` says.
    this.destination = new AppendSink(options.file, 0o600);
    this.destination.on('error', (err: Error) => {
      this.failure ??= err;
    });
    const stream: DestinationStream =
      options.extraDestination === undefined
        ? this.destination
        : pino.multistream([{ stream: this.destination }, { stream: options.extraDestination }]);
    this.logger = pino(
      {
        level: 'info',
        base: null,
        timestamp: false,
        // The level slot opens every line; use it for the format version instead.
        formatters: { level: () => ({ v: AUDIT_FORMAT_VERSION }) },
        redact: { paths: [...REDACT_PATHS], remove: true },
      },
      stream,
    );
  }

  /**
   * Opens (or creates) the trail at `file` and continues its chain. The last
   * entry must authenticate under `macKey`: a torn, malformed or forged tail
   * (or the wrong key) throws `CorruptDataError` naming the file and entry
   * index, and the caller decides (verify, move the file aside, ...). Writes a
   * `trail-open` entry saying where it resumed and whether the last session
   * closed cleanly.
   */
  static async open(options: AuditTrailOptions): Promise<AuditTrail> {
    const key = deriveAuditMacKey(options.macKey);
    try {
      await mkdirDurable(dirname(options.file), 0o700);
      const torn = await dropTornTail(options.file);
      const state = await readChainState(options.file, key);
      if (options.expectHead !== undefined) checkReachesHead(options.file, state, options.expectHead);
      // Create with 0600 ourselves, and tighten a file someone else created.
      // A new trail's directory entry must be durable before any entry is: a store state may soon name its head.
      const created = await fileLayer().open(options.file, 'create', 0o600).catch(ignoreExisting);
      if (created !== undefined) {
        await created.close();
        await fsyncDir(dirname(options.file));
      }
      await fileLayer().chmod(options.file, 0o600);
      const trail = new AuditTrail(options, key, state);
      trail.record({
        action: TRAIL_OPEN_ACTION,
        outcome: 'ok',
        details:
          state.resumed === undefined
            ? { created: true, ...(torn > 0 ? { tornTailBytes: torn } : {}) }
            : { previousSeq: state.resumed.seq, previousClosed: state.resumed.closed, ...(torn > 0 ? { tornTailBytes: torn } : {}) },
      });
      return trail;
    } catch (err) {
      key.fill(0);
      throw err;
    }
  }

  /**
   * Appends one entry and returns the new head. Only allow-listed fields are
   * written (see `sanitizeEvent`): key bytes, vectors and metadata passed by
   * mistake are dropped.
   */
  record(event: AuditEvent): AuditHead {
    if (this.closing !== undefined) throw new ClosedError(`audit trail ${this.file} is closed`);
    return this.append(event);
  }

  /** The last entry written: keep it (seq and MAC) to detect a truncated tail later. */
  head(): AuditHead {
    if (this.last === undefined) throw new ClosedError(`audit trail ${this.file} has no entry yet`);
    return { ...this.last };
  }

  /**
   * Makes every entry recorded so far durable (fsync of the trail file):
   * called when an operation whose entries must survive a crash returns.
   */
  async sync(): Promise<void> {
    this.throwIfFailed();
    if (this.closing !== undefined) return;
    await this.flush();
    await this.fsyncOrFail();
  }

  /**
   * fsync of the trail file; a failure is kept (every later call fails too)
   * and thrown as AuditWriteError: after a failed fsync the unsynced lines
   * may be gone from the page cache, so no later fsync can vouch for them.
   */
  private async fsyncOrFail(): Promise<void> {
    try {
      await this.destination.fsync();
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      const last = this.nextSeq - 1;
      throw new AuditWriteError(`audit trail ${this.file}: entries up to seq ${last} are not durable (fsync failed)`, { cause: err });
    }
  }

  /** Waits until every recorded entry is in the file (a no-op for a sync trail). */
  async flush(): Promise<void> {
    this.throwIfFailed();
    await new Promise<void>((resolve, reject) => {
      this.destination.flush((err?: Error) => (err ? reject(err) : resolve()));
    }).catch((err: unknown) => {
      // SonicBoom refuses a flush while the file is still opening or idle; only real write errors matter.
      if (this.failure !== undefined) throw err;
    });
    this.throwIfFailed();
  }

  /**
   * Writes the close checkpoint, flushes and closes the file and zeroes the
   * MAC key. Returns the final head. Idempotent.
   */
  close(): Promise<AuditHead> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<AuditHead> {
    try {
      const head = this.append({
        action: CHECKPOINT_ACTION,
        outcome: 'ok',
        details: { reason: 'close', entries: this.nextSeq + 1 },
      });
      // The checkpoint is the head a clean close records in the store state: it must be durable first.
      await this.fsyncOrFail();
      await new Promise<void>((resolve, reject) => {
        this.destination.once('close', () => resolve());
        this.destination.once('error', reject);
        this.destination.end();
      });
      this.throwIfFailed();
      return head;
    } finally {
      this.key.fill(0);
    }
  }

  private append(event: AuditEvent): AuditHead {
    this.throwIfFailed();
    const clean = sanitizeEvent(event, this.principal);
    const { action, outcome, ...refs } = clean;
    const body: Omit<AuditEntry, 'mac'> = {
      v: AUDIT_FORMAT_VERSION,
      trail: this.trailId,
      seq: this.nextSeq,
      time: new Date().toISOString(),
      action,
      outcome,
      ...refs,
      prev: this.prev,
    };
    const mac = entryMac(this.key, body);
    const { v: _version, ...fields } = body;
    this.logger.info({ ...fields, mac });
    this.throwIfFailed();
    this.nextSeq += 1;
    this.prev = mac;
    this.last = { trail: this.trailId, seq: body.seq, mac };
    return { ...this.last };
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) {
      throw new AuditWriteError(`audit trail ${this.file} cannot be written`, { cause: this.failure });
    }
  }
}

/**
 * Cuts a torn last line (no newline: a write a power cut stopped part-way)
 * back to the last complete entry, durably, and returns the bytes dropped.
 * Such a line was never acknowledged: every entry an operation waited for
 * was fsynced whole. What is left must still reach the head the store state
 * recorded, so cutting an authentic entry this way is still caught.
 */
async function dropTornTail(file: string): Promise<number> {
  if ((await readTrailTail(file)).kind !== 'torn') return 0;
  const size = (await stat(file)).size;
  const keep = await lengthToLastNewline(file);
  const handle = await fileLayer().open(file, 'write');
  try {
    await handle.truncate(keep);
    await handle.fsync();
  } finally {
    await handle.close();
  }
  return size - keep;
}

/** Undefined for a file that existed already (EEXIST); any other error as it is. */
async function ignoreExisting(err: unknown): Promise<undefined> {
  if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  return undefined;
}

/** The trail's last entry must be the expected head or a later entry of the same trail. */
function checkReachesHead(file: string, state: ChainState, head: AuditHead): void {
  if (state.resumed === undefined) {
    throw new RollbackError(`audit trail is empty or missing; the store state records its head at seq ${head.seq}`, {
      file,
      reason: 'rollback',
    });
  }
  if (state.trail !== head.trail) {
    throw new CorruptDataError(`audit trail is trail ${state.trail}; the store state records trail ${head.trail}`, {
      file,
      reason: 'foreign',
    });
  }
  if (state.resumed.seq < head.seq || (state.resumed.seq === head.seq && state.prev !== head.mac)) {
    throw new RollbackError(
      `audit trail ends at seq ${state.resumed.seq}; the store state records its head at seq ${head.seq}: the trail was cut back`,
      { file, reason: 'rollback' },
    );
  }
}

async function readChainState(file: string, key: Buffer): Promise<ChainState> {
  const tail = await readTrailTail(file);
  if (tail.kind === 'empty') {
    const trail = randomUUID();
    return { trail, nextSeq: 0, prev: genesisMac(key, trail), resumed: undefined };
  }
  const problem = async (reason: string, what: string, complete: boolean): Promise<never> => {
    const lines = await countTrailLines(file);
    const index = complete ? lines - 1 : lines;
    throw new CorruptDataError(`audit trail tail entry ${index} (line ${index + 1}) ${what}`, { file, reason });
  };
  if (tail.kind === 'torn') return problem('truncated', 'is cut short (a torn write or a truncated file)', false);
  if (tail.kind === 'oversized') return problem('malformed', 'is not an audit entry (too long)', true);
  const entry = parseEntry(tail.text);
  if (typeof entry === 'string') return problem('malformed', `is not an audit entry (${entry})`, true);
  if (!entryMacValid(key, entry)) {
    return problem('modified', `(seq ${entry.seq}) does not authenticate: a wrong audit key, or the entry was changed`, true);
  }
  return {
    trail: entry.trail,
    nextSeq: entry.seq + 1,
    prev: entry.mac,
    resumed: { seq: entry.seq, closed: isCloseCheckpoint(entry) },
  };
}
