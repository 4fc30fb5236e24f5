import { existsSync } from 'node:fs';
import { EXIT } from '../exit-codes.js';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { KEYRING_FILE } from '../../keys/key-manager.js';
import { checkShredded } from '../../store/shred-check.js';
import { cliKekConfig } from '../context.js';
import { output } from '../context.js';

/** Exit code of `verify-shredded` when some file can still be opened. */
export const OPENABLE_EXIT_CODE = EXIT.OPENABLE;

/**
 * `vectorseal verify-shredded <files...>`: for any files (copies taken before
 * a deletion included), shows that no key still available opens them.
 */
export function registerVerifyShreddedCommand(program: Command): void {
  program
    .command('verify-shredded <paths...>')
    .description(
      'show that no remaining key opens the given files (segments, manifests, WAL files, ' +
        'or directories of them); exit 0 if none opens, 3 if one does',
    )
    .option('--dir <dir>', 'the store, whose current keyring is tried (default: env VECTORSEAL_DIR)')
    .option(
      '--keyring <file>',
      'an old keyring copy to try as well (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--key-dir <dir>', 'local master key directory, where the keyring does not say')
    .option('--json', 'print JSON')
    .action(async (paths: string[], opts: { dir?: string; keyring: string[]; keyDir?: string; json?: boolean }) => {
      const dir = opts.dir ?? process.env['VECTORSEAL_DIR'];
      const keyrings = [
        ...(dir !== undefined && existsSync(join(dir, KEYRING_FILE)) ? [join(resolve(dir), KEYRING_FILE)] : []),
        ...opts.keyring.map((k) => resolve(k)),
      ];
      if (keyrings.length === 0) throw new InvalidArgumentError('no keyring to try: pass --dir <store> and/or --keyring <file>');
      // The KEKs tried are the store's configured ones (its config file), and local keys in the key directory.
      const config = dir !== undefined && existsSync(join(dir, 'STORE')) ? await cliKekConfig({ dir }) : undefined;
      const results = await checkShredded({
        paths: paths.map((p) => resolve(p)),
        keyrings,
        ...(config === undefined ? {} : { keks: config.keks }),
        ...(opts.keyDir === undefined ? {} : { localKeyDir: resolve(opts.keyDir) }),
      });
      const openable = results.filter((r) => r.status === 'OPENABLE');
      output(opts, { keyrings, files: results, openable: openable.length }, () =>
        [
          ...results.map((r) =>
            r.status === 'OPENABLE'
              ? `OPENABLE       ${r.file} (collection ${r.collectionId}, DEK v${r.dekVersion}) ` +
                `with KEK ${r.openedWith?.kek} of ${r.openedWith?.keyring}`
              : `${r.status.padEnd(14)} ${r.file}` +
                `${r.collectionId ? ` (collection ${r.collectionId}, DEK v${r.dekVersion})` : ''}` +
                `${r.attempts.length ? `\n               ${r.attempts.join('\n               ')}` : ''}`,
          ),
          `${results.length} file(s), ${openable.length} OPENABLE, tried ${keyrings.length} keyring(s)`,
        ].join('\n'),
      );
      process.exitCode = openable.length > 0 ? OPENABLE_EXIT_CODE : EXIT.OK;
    });
}
