#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { VectorsealError } from '../errors.js';
import { resolveStoreAudit } from './audit-key.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerCollectionCommands } from './commands/collection.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerImportCommand } from './commands/import.js';
import { registerKmsCommands } from './commands/kms.js';
import { registerLifecycleCommands } from './commands/lifecycle.js';
import { registerSearchCommand } from './commands/search.js';
import { registerStoreCommands } from './commands/store.js';
import { registerVerifyShreddedCommand } from './commands/verify-shredded.js';

/** The `vectorseal` command line. */
export function buildProgram(): Command {
  const program = new Command('vectorseal')
    .description('an embedded vector store with encryption at rest')
    .version('0.1.0')
    .showHelpAfterError();
  registerStoreCommands(program);
  registerCollectionCommands(program);
  registerImportCommand(program);
  registerSearchCommand(program);
  registerDemoCommand(program);
  registerKmsCommands(program);
  registerBackupCommands(program);
  registerLifecycleCommands(program);
  registerVerifyShreddedCommand(program);
  registerAuditCommands(program, resolveStoreAudit);
  return program;
}

/** Runs the CLI; typed errors print as `error <code>: <message>` with no stack trace. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode || 1;
    } else if (err instanceof VectorsealError) {
      process.stderr.write(`error ${err.code}: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err as Error;
      process.stderr.write(`error: ${e?.message ?? String(err)}\n`);
      if (process.env['VECTORSEAL_DEBUG']) process.stderr.write(`${e?.stack ?? ''}\n`);
      process.exitCode = 1;
    }
  }
}

await main(process.argv);
