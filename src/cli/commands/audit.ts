import type { Command } from 'commander';
import { EXIT } from '../exit-codes.js';
import {
  type AuditEntry,
  type AuditVerification,
  auditFilePath,
  formatAuditHead,
  parseAuditHead,
  parseEntry,
  readTrailLines,
  verifyAuditTrail,
} from '../../audit/index.js';
import { InvalidArgumentError } from '../../errors.js';

/** Exit code of `audit verify` when the trail is not intact. */
export const AUDIT_TAMPERED_EXIT_CODE = EXIT.TAMPERED;

interface VerifyOptions {
  dir: string;
  file?: string;
  json?: boolean;
  allowOpen?: boolean;
  head?: string;
}

interface ShowOptions {
  dir: string;
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
  resolveMacKey: (opts: { dir: string; keyDir?: string; config?: string }) => Promise<Uint8Array>,
): void {
  const audit = program.command('audit').description('the tamper-evident audit trail of key operations');

  audit
    .command('verify')
    .description('check every entry and the chain; exit 0 if intact, 2 if tampered')
    .option('--dir <dir>', 'store directory', '.')
    .option('--file <file>', 'audit trail file (default <dir>/audit.log)')
    .option('--json', 'print the result as JSON')
    .option('--allow-open', 'accept a trail without a final close checkpoint (a store still open, or crashed)')
    .option('--head <trail:seq:mac>', 'the head kept from an earlier run: the file must reach it')
    .option('--key-dir <dir>', 'local master key directory (default: env VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys)')
    .option('--config <file>', "the store's KEK configuration (default: env VECTORSEAL_CONFIG, else found by store id)")
    .action(async (opts: VerifyOptions & { keyDir?: string; config?: string }) => {
      const file = opts.file ?? auditFilePath(opts.dir);
      const expectedHead = opts.head === undefined ? undefined : parseAuditHead(opts.head);
      const macKey = await resolveMacKey({ dir: opts.dir, ...(opts.keyDir === undefined ? {} : { keyDir: opts.keyDir }), ...(opts.config === undefined ? {} : { config: opts.config }) });
      let result: AuditVerification;
      try {
        result = await verifyAuditTrail({
          file,
          macKey,
          ...(expectedHead === undefined ? {} : { expectedHead }),
          ...(opts.allowOpen ? { requireClosed: false } : {}),
        });
      } finally {
        macKey.fill(0);
      }
      process.stdout.write(opts.json ? `${JSON.stringify({ file, ...result })}\n` : describeVerification(file, result));
      process.exitCode = result.ok ? 0 : AUDIT_TAMPERED_EXIT_CODE;
    });

  audit
    .command('show')
    .description('print audit entries (use `audit verify` to check them)')
    .option('--dir <dir>', 'store directory', '.')
    .option('--file <file>', 'audit trail file (default <dir>/audit.log)')
    .option('--json', 'print the entries as JSON lines')
    .option('--tail <n>', 'only the last n entries', parseCount)
    .action(async (opts: ShowOptions) => {
      const file = opts.file ?? auditFilePath(opts.dir);
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
  return `${String(entry.seq).padStart(6)}  ${entry.time}  ${entry.action.padEnd(18)} ${entry.outcome.padEnd(6)} ${refs.join(' ')}`.trimEnd();
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`--tail expected a non-negative integer, got "${value}"`);
  return n;
}
