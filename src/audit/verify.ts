import { access } from 'node:fs/promises';
import { CorruptDataError, NotFoundError } from '../errors.js';
import { deriveAuditMacKey } from './audit-key.js';
import { type AuditEntry, type AuditHead, entryMacValid, genesisMac, isCloseCheckpoint, parseEntry } from './entry.js';
import { readTrailLines, type TrailLine } from './line-reader.js';

export type AuditProblem = 'modified' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'malformed';

export interface VerifyAuditTrailOptions {
  file: string;
  /** The 32-byte audit key (the MAC key is derived from it, as the writer does). */
  macKey: Uint8Array;
  /** A head kept elsewhere (from `AuditTrail.head()`/`close()`): the file must reach it. */
  expectedHead?: AuditHead;
  /**
   * Require the last entry to be the checkpoint a clean close writes; a trail
   * cut after its last checkpoint is then reported as truncated. Default: true
   * without `expectedHead`, false with one (the head already proves the tail).
   * Pass false to check a trail that is still being written.
   */
  requireClosed?: boolean;
}

export interface AuditTrailIntact {
  ok: true;
  /** Number of entries, all authentic and in order. */
  entries: number;
  /** The last entry, or undefined for an empty file. */
  head: AuditHead | undefined;
  /** Whether the last entry is a close checkpoint. */
  closed: boolean;
}

export interface AuditTrailTampered {
  ok: false;
  problem: AuditProblem;
  /** 0-based index (line) of the first bad entry; for a truncated tail, the index of the first missing one. */
  firstBadEntry: number;
  /** The seq an intact trail has at that index. */
  expectedSeq: number;
  /** What was found, for people. */
  detail: string;
  /** Entries before the first bad one (all authentic and in order). */
  entries: number;
  /** The last good entry before the damage. */
  head: AuditHead | undefined;
}

export type AuditVerification = AuditTrailIntact | AuditTrailTampered;

type Parsed = { line: TrailLine; entry: AuditEntry | undefined; problem: string | undefined };

/**
 * Walks the trail and reports the first entry that breaks it, with the kind of
 * change as well as the chain can tell it:
 * - a line that is not an entry → malformed; a last line without newline → truncated;
 * - a MAC that fails → modified, or inserted when the next entry links over it;
 * - a seq ahead of the expected one → reordered if the missing seq follows later, else deleted;
 * - a seq already passed → inserted (a replayed genuine entry);
 * - an end before `expectedHead`, or (by default) without a close checkpoint → truncated.
 */
export async function verifyAuditTrail(options: VerifyAuditTrailOptions): Promise<AuditVerification> {
  const key = deriveAuditMacKey(options.macKey);
  try {
    await access(options.file).catch((err: unknown) => {
      throw new NotFoundError(`audit trail ${options.file} cannot be read`, { cause: err });
    });
    return await walk(options, key);
  } finally {
    key.fill(0);
  }
}

/** Like {@link verifyAuditTrail} but throws a `CorruptDataError` (reason = the problem) when the trail is not intact. */
export async function assertAuditTrailIntact(options: VerifyAuditTrailOptions): Promise<AuditTrailIntact> {
  const result = await verifyAuditTrail(options);
  if (!result.ok) {
    throw new CorruptDataError(
      `audit trail ${result.problem} at entry ${result.firstBadEntry} (line ${result.firstBadEntry + 1}, ` +
        `expected seq ${result.expectedSeq}): ${result.detail}`,
      { file: options.file, reason: result.problem },
    );
  }
  return result;
}

async function walk(options: VerifyAuditTrailOptions, key: Buffer): Promise<AuditVerification> {
  const lines = readTrailLines(options.file);
  let lookahead: Parsed | undefined;
  let done = false;
  const next = async (): Promise<Parsed | undefined> => {
    if (lookahead !== undefined) {
      const held = lookahead;
      lookahead = undefined;
      return held;
    }
    if (done) return undefined;
    const step = await lines.next();
    if (step.done) {
      done = true;
      return undefined;
    }
    const parsed = parseEntry(step.value.text);
    return typeof parsed === 'string'
      ? { line: step.value, entry: undefined, problem: parsed }
      : { line: step.value, entry: parsed, problem: undefined };
  };
  const peek = async (): Promise<Parsed | undefined> => {
    if (lookahead === undefined) lookahead = await next();
    return lookahead;
  };
  const authentic = (p: Parsed | undefined): AuditEntry | undefined =>
    p !== undefined && p.line.complete && p.entry !== undefined && entryMacValid(key, p.entry) ? p.entry : undefined;

  let count = 0;
  let trail: string | undefined;
  let lastMac = '';
  let last: AuditEntry | undefined;
  let macAtHead: string | undefined;
  let beforeHead: AuditHead | undefined;
  const headOf = (): AuditHead | undefined => (last === undefined ? undefined : { trail: last.trail, seq: last.seq, mac: last.mac });
  const fail = (problem: AuditProblem, detail: string): AuditTrailTampered => ({
    ok: false,
    problem,
    firstBadEntry: count,
    expectedSeq: count,
    detail,
    entries: count,
    head: headOf(),
  });

  try {
    for (let current = await next(); current !== undefined; current = await next()) {
      const { line, entry } = current;
      if (!line.complete) return fail('truncated', 'the last line is cut short (a torn write or a truncated file)');
      if (entry === undefined) return fail('malformed', `the line is not an audit entry (${current.problem ?? 'unreadable'})`);

      if (!entryMacValid(key, entry)) {
        const following = authentic(await peek());
        const linkBack = count === 0 ? (following ? genesisMac(key, following.trail) : '') : lastMac;
        if (following && following.seq === count && following.prev === linkBack) {
          return fail('inserted', 'an entry that does not authenticate sits between two linked entries (a forged insertion)');
        }
        if (count === 0 && following === undefined) {
          return fail('modified', 'the first entry does not authenticate: a wrong audit key, or the entry was changed');
        }
        return fail('modified', `entry seq ${entry.seq} does not authenticate: its content was changed`);
      }
      if (trail === undefined) {
        trail = entry.trail;
        lastMac = genesisMac(key, trail);
      }
      if (entry.trail !== trail) {
        return fail('inserted', `the entry belongs to another trail (${entry.trail})`);
      }
      if (entry.seq > count) {
        // Either entries were removed, or they come later (moved).
        for (let later = await next(); later !== undefined; later = await next()) {
          const moved = authentic(later);
          if (moved && moved.trail === trail && moved.seq === count) {
            return fail(
              'reordered',
              `found seq ${entry.seq} where seq ${count} belongs; seq ${count} appears later, at line ${later.line.index + 1}`,
            );
          }
        }
        const missing = entry.seq - count;
        return fail('deleted', `seq ${count}${missing > 1 ? `..${entry.seq - 1}` : ''} missing: the next entry has seq ${entry.seq}`);
      }
      if (entry.seq < count) {
        return fail('inserted', `a second copy of seq ${entry.seq} (a replayed entry)`);
      }
      if (entry.prev !== lastMac) {
        return fail('inserted', 'the entry authenticates but does not link to the previous one (spliced from another copy of the trail)');
      }
      if (options.expectedHead !== undefined) {
        if (entry.seq === options.expectedHead.seq) macAtHead = entry.mac;
        if (entry.seq === options.expectedHead.seq - 1) beforeHead = { trail: entry.trail, seq: entry.seq, mac: entry.mac };
      }
      lastMac = entry.mac;
      last = entry;
      count += 1;
    }
  } finally {
    await lines.return(undefined);
  }

  const expected = options.expectedHead;
  if (expected !== undefined) {
    if (trail !== undefined && expected.trail !== trail) {
      return {
        ...fail('modified', `the file holds trail ${trail}, not the expected trail ${expected.trail}`),
        firstBadEntry: 0,
        expectedSeq: 0,
      };
    }
    if (last === undefined || last.seq < expected.seq) {
      return fail(
        'truncated',
        `the trail ends at ${last === undefined ? 'no entry' : `seq ${last.seq}`}; the expected head is seq ${expected.seq}`,
      );
    }
    if (macAtHead !== expected.mac) {
      // The entry at the head's seq is authentic but another one: the tail was cut and rewritten.
      return {
        ...fail('truncated', `seq ${expected.seq} differs from the expected head: the trail was rolled back and continued`),
        firstBadEntry: expected.seq,
        expectedSeq: expected.seq,
        entries: expected.seq,
        head: beforeHead,
      };
    }
  }
  const closed = last !== undefined && isCloseCheckpoint(last);
  if ((options.requireClosed ?? expected === undefined) && !closed) {
    return fail('truncated', last === undefined ? 'the trail is empty' : `the last entry (seq ${last.seq}) is not a close checkpoint`);
  }
  return { ok: true, entries: count, head: headOf(), closed };
}
