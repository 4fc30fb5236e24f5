import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { importRecords } from '../../store/index.js';
import { output, parseIntOption, storeOptions, withStore, type StoreCliOptions } from '../context.js';
import { importProgress } from '../import-progress.js';
import { openInput, readSource } from '../import-reader.js';

export function registerImportCommand(program: Command): void {
  storeOptions(
    program
      .command('import <collection> <file>')
      .description(
        'import JSON Lines ({"id","vector","metadata"}) or .fvecs: ' +
          'every record is checked before any is written; a repeated id: the last one wins',
      ),
  )
    .option('--batch <n>', 'records per write batch', parseIntOption('--batch', 1, 100_000), 1000)
    .option('--resume', 'continue an import that stopped: records already stored exactly are skipped')
    .option('--json', 'print JSON')
    .action(async (collection: string, file: string, opts: StoreCliOptions & { batch: number; resume?: boolean }) => {
      const handle = await openInput(file);
      const before = await handle.stat();
      await handle.close();
      await withStore(opts, async (store) => {
        const col = store.collection(collection);
        const bar = importProgress(opts, before.size);
        const started = Date.now();
        let report;
        try {
          report = await importRecords(col, () => readSource(file), {
            batchSize: opts.batch,
            ...(opts.resume ? { resume: true } : {}),
            onProgress: (p) => bar.update(p),
            beforeWrite: async () => {
              const h = await openInput(file);
              const now = await h.stat();
              await h.close();
              if (now.size !== before.size || now.mtimeMs !== before.mtimeMs)
                throw new InvalidArgumentError(`input file ${file} changed while it was being checked; nothing was written`);
            },
            onStopped: (stop) => {
              bar.stop();
              process.stderr.write(
                stop.committed === 0
                  ? `import stopped before any record was committed\n`
                  : `import stopped: ${stop.committed} records committed, up to ${stop.where}; ` +
                      `run the same command with --resume to continue\n`,
              );
            },
          });
        } finally {
          bar.stop();
        }
        const seconds = (Date.now() - started) / 1000;
        output(
          opts,
          { collection, ...report, imported: report.written, count: col.count, seconds },
          () =>
            `imported ${report.written} records into ${collection} in ${seconds.toFixed(1)} s (${col.count} records now)` +
            (report.skipped > 0 ? `; ${report.skipped} already stored, skipped` : '') +
            (report.duplicates > 0 ? `; ${report.duplicates} repeated ids (the last one won)` : ''),
        );
      });
    });
}
