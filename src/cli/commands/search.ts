import type { Command } from 'commander';
import type { Filter } from '../../store/index.js';
import { parseVectorOption } from '../vector-input.js';
import { output, parseIntOption, parseJsonOption, storeOptions, withStore, type StoreCliOptions } from '../context.js';

export function registerSearchCommand(program: Command): void {
  storeOptions(program.command('search <collection>').description('nearest neighbours of a vector'))
    .requiredOption(
      '--vector <json|@file|->',
      'the query vector: a JSON array, @file.json to read it from a file, or - for stdin',
      parseVectorOption,
    )
    .option('--k <n>', 'number of results', parseIntOption('--k', 1, 10_000), 10)
    .option('--ef <n>', 'search breadth', parseIntOption('--ef', 1, 100_000))
    .option('--filter <json>', 'metadata filter, e.g. {"lang":"en","year":{"$gt":2020}}', parseJsonOption('--filter'))
    .option('--json', 'print JSON')
    .action(async (collection: string, opts: StoreCliOptions & { vector: number[]; k: number; ef?: number; filter?: unknown }) => {
      await withStore(
        opts,
        async (store) => {
          const hits = store.collection(collection).search(opts.vector, opts.k, {
            ...(opts.filter === undefined ? {} : { filter: opts.filter as Filter }),
            ...(opts.ef === undefined ? {} : { ef: opts.ef }),
          });
          output(opts, hits, () =>
            hits.length === 0
              ? 'no results'
              : hits.map((h, i) => `${i + 1}. ${h.id}\t${h.score.toFixed(6)}\t${JSON.stringify(h.metadata ?? {})}`).join('\n'),
          );
        },
        { readOnly: true },
      );
    });
}
