import { CommanderError } from 'commander';
import { CorruptDataError, VectorsealError } from '../errors.js';

/**
 * The exit codes of the `vectorseal` command, one table for every command
 * (documented in the README):
 *
 * - 0 `OK`: done.
 * - 1 `INTERNAL`: an unexpected error (a bug or a platform failure without a
 *   vectorseal code); VECTORSEAL_DEBUG=1 prints its stack.
 * - 2 `TAMPERED`: stored data, a backup or the audit trail is corrupt,
 *   tampered with or rolled back (VS_CORRUPT_DATA, VS_ROLLBACK; `audit
 *   verify` and `backup verify` finding a problem).
 * - 3 `OPENABLE`: `verify-shredded` found a file that still opens.
 * - 4 `ERROR`: any other typed vectorseal error (its VS_* code is printed).
 * - 64 `USAGE`: the command line does not parse (unknown command or option,
 *   missing argument), as sysexits' EX_USAGE.
 */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  TAMPERED: 2,
  OPENABLE: 3,
  ERROR: 4,
  USAGE: 64,
} as const;

/** The exit code for an error that ended a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof CorruptDataError) return EXIT.TAMPERED;
  if (err instanceof VectorsealError) return EXIT.ERROR;
  return EXIT.INTERNAL;
}

/** The code printed for an error: its VS_* code, VS_USAGE for a command line that does not parse, VS_INTERNAL otherwise. */
export function errorCodeOf(err: unknown): string {
  if (err instanceof VectorsealError) return err.code;
  if (err instanceof CommanderError) return 'VS_USAGE';
  return 'VS_INTERNAL';
}
