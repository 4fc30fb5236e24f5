import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { output, parseIntOption, storeOptions, withStore, type StoreCliOptions } from '../context.js';
import { readRecords } from '../import-reader.js';

export function registerImportCommand(program: Command): void {
  storeOptions(program.command('import <collection> <file>').description('import JSON Lines ({"id","vector","metadata"}) or .fvecs'))
    .option('--batch <n>', 'records per write batch', parseIntOption('--batch', 1, 100_000), 1000)
    .option('--json', 'print JSON')
    .action(async (collection: string, file: string, opts: StoreCliOptions & { batch: number }) => {
      const size = (await fs.stat(file)).size;
      await withStore(opts, async (store) => {
        const col = store.collection(collection);
        const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ stream: process.stderr, format: 'import [{bar}] {percentage}% | {records} records' }, cliProgress.Presets.shades_classic) : undefined;
        bar?.start(size, 0, { records: 0 });
        const started = Date.now();
        let records = 0;
        try {
          for await (const { batch, bytes } of readRecords(file, opts.batch)) {
            await col.upsert(batch);
            records += batch.length;
            bar?.update(bytes, { records });
          }
          await col.flush();
        } finally {
          bar?.stop();
        }
        const seconds = (Date.now() - started) / 1000;
        output(opts, { collection, imported: records, count: col.count, seconds }, () => `imported ${records} records into ${collection} in ${seconds.toFixed(1)} s (${col.count} records now)`);
      });
    });
}
