#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { resolveStoreAudit } from './audit-key.js';
import { errorCodeOf, exitCodeOf } from './exit-codes.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerCollectionCommands } from './commands/collection.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerImportCommand } from './commands/import.js';
import { registerKekCommands } from './commands/kek.js';
import { registerKmsCommands } from './commands/kms.js';
import { registerLifecycleCommands } from './commands/lifecycle.js';
import { registerSearchCommand } from './commands/search.js';
import { registerStoreCommands } from './commands/store.js';
import { registerVerifyShreddedCommand } from './commands/verify-shredded.js';
import { registerXksCommands } from './commands/xks.js';

/** The package's version, from the package.json beside src/ and dist/ (one level up from cli/). */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The `vectorseal` command line. */
export function buildProgram(): Command {
  const program = new Command('vectorseal')
    .description('an embedded vector store with encryption at rest')
    .version(VERSION)
    // A typo gets commander's "Did you mean ...?" and this hint, not the whole help.
    .showHelpAfterError('(vectorseal --help lists the commands; vectorseal <command> --help its options)')
    // Errors are thrown to main() (one place prints them and picks the exit code), not process.exit.
    .exitOverride();

  registerStoreCommands(program);
  registerCollectionCommands(program);
  registerImportCommand(program);
  registerSearchCommand(program);
  registerDemoCommand(program);
  registerKmsCommands(program);
  registerXksCommands(program);
  registerKekCommands(program);
  registerBackupCommands(program);
  registerLifecycleCommands(program);
  registerVerifyShreddedCommand(program);
  registerAuditCommands(program, resolveStoreAudit);
  return program;
}

/**
 * Runs the CLI. Errors print as `error <code>: <message>` on stderr (no
 * stack trace), or with --json as one line `{"error":{"code","message"}}` on
 * stdout; the exit code comes from exit-codes.ts.
 */
export async function main(argv: string[]): Promise<void> {
  const json = argv.slice(2).includes('--json');
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeOf(err);
    if (err instanceof CommanderError) {
      // Commander has printed its message (stderr); --help and --version end here with 0.
      if (json && err.exitCode !== 0)
        process.stdout.write(`${JSON.stringify({ error: { code: errorCodeOf(err), message: err.message.replace(/^error: /, '') } })}\n`);
      return;
    }
    const message = (err as Error)?.message ?? String(err);
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: errorCodeOf(err), message } })}\n`);
    else process.stderr.write(errorCodeOf(err) === 'VS_INTERNAL' ? `error: ${message}\n` : `error ${errorCodeOf(err)}: ${message}\n`);
    if (process.env['VECTORSEAL_DEBUG']) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  }
}

await main(process.argv);
