import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { EXIT } from '../exit-codes.js';
import {
  type AuditEntry,
  type AuditHead,
  type AuditVerification,
  auditFilePath,
  formatAuditHead,
  parseAuditHead,
  parseEntry,
  readTrailLines,
  verifyAuditTrail,
} from '../../audit/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { liveLockHolder, type LockInfo } from '../../storage/lock.js';

/** Exit code of `audit verify` when the trail is not intact. */
export const AUDIT_TAMPERED_EXIT_CODE = EXIT.TAMPERED;

/** What the key resolver gives `audit verify`: the audit key, and the head the store's authenticated state recorded. */
export interface AuditKeyResolution {
  macKey: Uint8Array;
  recordedHead?: AuditHead;
}

interface VerifyOptions {
  dir?: string;
  file?: string;
  json?: boolean;
  allowOpen?: boolean;
  head?: string;
}

interface ShowOptions {
  dir?: string;
  file?: string;
  json?: boolean;
  tail?: number;
}

/**
 * Adds `vectorseal audit verify` (check the MAC chain; exit 0 when intact,
 * 2 when tampered, naming the first bad entry) and `vectorseal audit show`
 * (print entries). `resolveMacKey` supplies the store's 32-byte audit key; the
 * bytes it returns are zeroed after use.
 */
export function registerAuditCommands(
  program: Command,
  resolveMacKey: (opts: { dir: string; keyDir?: string; config?: string }) => Promise<Uint8Array | AuditKeyResolution>,
): void {
  const audit = program.command('audit').description('the tamper-evident audit trail of key operations');

  audit
    .command('verify')
    .description('check every entry and the chain; exit 0 if intact, 2 if tampered')
    .option('--dir <dir>', 'store directory (default: env VECTORSEAL_DIR)')
    .option('--file <file>', 'audit trail file (default <dir>/audit.log)')
    .option('--json', 'print the result as JSON')
    .option('--allow-open', 'accept a trail without a final close checkpoint (a store still open, or crashed)')
    .option('--head <trail:seq:mac>', 'the head kept from an earlier run: the file must reach it')
    .option('--key-dir <dir>', 'local master key directory (default: env VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys)')
    .option('--config <file>', "the store's KEK configuration (default: env VECTORSEAL_CONFIG, else found by store id)")
    .action(async (opts: VerifyOptions & { keyDir?: string; config?: string }) => {
      const dir = auditDir(opts);
      const file = opts.file ?? auditFilePath(dir);
      // The store's own trail is held to the head its authenticated state recorded, and may be open right now.
      const own = resolve(file) === resolve(auditFilePath(dir));
      const given = opts.head === undefined ? undefined : parseAuditHead(opts.head);
      const resolved = await resolveMacKey({
        dir,
        ...(opts.keyDir === undefined ? {} : { keyDir: opts.keyDir }),
        ...(opts.config === undefined ? {} : { config: opts.config }),
      });
      const { macKey, recordedHead } = resolved instanceof Uint8Array ? { macKey: resolved, recordedHead: undefined } : resolved;
      const expectedHead = given ?? (own ? recordedHead : undefined);
      const holder = own ? await liveLockHolder(dir) : undefined;
      let result: AuditVerification;
      try {
        result = await verifyAuditTrail({
          file,
          macKey,
          ...(expectedHead === undefined ? {} : { expectedHead }),
          ...(opts.allowOpen || holder !== undefined ? { requireClosed: false } : {}),
        });
      } finally {
        macKey.fill(0);
      }
      // While a live process writes the trail, its end (past the recorded head) is not final: that is "open", not tampering.
      const open =
        holder !== undefined && (result.ok || (result.problem === 'truncated' && result.firstBadEntry > (expectedHead?.seq ?? -1)));
      if (open) {
        const status = {
          file,
          open: true,
          holder: { pid: holder.pid, hostname: holder.hostname, since: holder.startedAt },
          entries: result.entries,
          head: result.head,
        };
        process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...status })}\n` : describeOpen(file, holder, result));
        process.exitCode = EXIT.OK;
        return;
      }
      process.stdout.write(opts.json ? `${JSON.stringify({ file, ...result })}\n` : describeVerification(file, result));
      process.exitCode = result.ok ? EXIT.OK : AUDIT_TAMPERED_EXIT_CODE;
    });

  audit
    .command('show')
    .description('print audit entries (use `audit verify` to check them)')
    .option('--dir <dir>', 'store directory (default: env VECTORSEAL_DIR)')
    .option('--file <file>', 'audit trail file (default <dir>/audit.log)')
    .option('--json', 'print the entries as JSON lines')
    .option('--tail <n>', 'only the last n entries', parseCount)
    .action(async (opts: ShowOptions) => {
      const file = opts.file ?? auditFilePath(auditDir(opts));
      const keep = opts.tail ?? Number.POSITIVE_INFINITY;
      const shown: string[] = [];
      for await (const line of readTrailLines(file)) {
        const entry = parseEntry(line.text);
        const text =
          typeof entry === 'string' || !line.complete
            ? opts.json
              ? JSON.stringify({ line: line.index + 1, unreadable: line.complete ? entry : 'cut short' })
              : `line ${line.index + 1}: unreadable (${line.complete ? String(entry) : 'cut short'})`
            : opts.json
              ? JSON.stringify(entry)
              : describeEntry(entry);
        shown.push(text);
        if (shown.length > keep) shown.shift();
      }
      if (keep === 0) shown.length = 0;
      process.stdout.write(shown.map((text) => `${text}\n`).join(''));
    });
}

/** --dir, else VECTORSEAL_DIR, else (with --file) the file's directory. */
function auditDir(opts: { dir?: string; file?: string }): string {
  const dir = opts.dir ?? process.env['VECTORSEAL_DIR'] ?? (opts.file === undefined ? undefined : dirname(opts.file));
  if (!dir) throw new InvalidArgumentError('no store directory: pass --dir or set VECTORSEAL_DIR');
  return resolve(dir);
}

function describeOpen(file: string, holder: LockInfo, result: AuditVerification): string {
  const head = result.head === undefined ? 'none' : formatAuditHead(result.head);
  return (
    `audit trail ${file}: open (the store is held by process ${holder.pid} on ${holder.hostname} since ${holder.startedAt})\n` +
    `${result.entries} entries intact so far; the end is still being written\nhead ${head}\n`
  );
}

function describeVerification(file: string, result: AuditVerification): string {
  if (result.ok) {
    const head = result.head === undefined ? 'none' : formatAuditHead(result.head);
    return `audit trail ${file}: intact, ${result.entries} entries${result.closed ? ', closed' : ', not closed'}\nhead ${head}\n`;
  }
  return (
    `audit trail ${file}: TAMPERED (${result.problem})\n` +
    `first bad entry: index ${result.firstBadEntry} (line ${result.firstBadEntry + 1}, expected seq ${result.expectedSeq})\n` +
    `${result.detail}\n` +
    `entries verified before it: ${result.entries}\n`
  );
}

function describeEntry(entry: AuditEntry): string {
  const refs: string[] = [];
  if (entry.principal !== undefined) refs.push(`principal=${entry.principal}`);
  if (entry.tenant !== undefined) refs.push(`tenant=${entry.tenant}`);
  if (entry.collectionId !== undefined) refs.push(`collection=${entry.collectionId}`);
  if (entry.kek !== undefined) refs.push(`kek=${entry.kek}`);
  if (entry.keyId !== undefined) refs.push(`keyId=${entry.keyId}`);
  if (entry.kekVersion !== undefined) refs.push(`kekVersion=${entry.kekVersion}`);
  if (entry.dekVersion !== undefined) refs.push(`dekVersion=${entry.dekVersion}`);
  if (entry.error !== undefined) refs.push(`error=${entry.error}`);
  if (entry.details !== undefined) {
    for (const [name, value] of Object.entries(entry.details)) refs.push(`${name}=${String(value)}`);
  }
  return (
    `${String(entry.seq).padStart(6)}  ${entry.time}  ${entry.action.padEnd(18)} ` + `${entry.outcome.padEnd(6)} ${refs.join(' ')}`
  ).trimEnd();
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`--tail expected a non-negative integer, got "${value}"`);
  return n;
}
