import { Option, type Command } from 'commander';
import { confirmOrRefuse } from '../confirm.js';
import type { Space } from '../../store/index.js';
import { output, parseIntOption, storeOptions, withStore, type StoreCliOptions } from '../context.js';

export function registerCollectionCommands(program: Command): void {
  const col = program.command('collection').description('create, list and drop collections');

  storeOptions(col.command('create <name>').description('create a collection with its own data key'))
    .requiredOption('--dim <n>', 'vector dimension', parseIntOption('--dim', 1, 65_536))
    .addOption(new Option('--space <space>', 'distance').choices(['l2', 'ip', 'cosine']).default('l2'))
    .option('--tenant <tenant>', 'tenant (its own KEK when one is configured)')
    // Named as in the API (createCollection's M and efConstruction); --m is kept as an alias.
    .option('--M <n>', 'HNSW links per node, 2-256 (default 16)', parseIntOption('--M', 2, 256))
    .addOption(new Option('--m <n>').argParser(parseIntOption('--m', 2, 256)).hideHelp())
    .option('--ef-construction <n>', 'HNSW build breadth, 1-10000 (default 200)', parseIntOption('--ef-construction', 1, 10_000))
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        opts: StoreCliOptions & { dim: number; space: string; tenant?: string; M?: number; m?: number; efConstruction?: number },
      ) => {
        const M = opts.M ?? opts.m;
        await withStore(opts, async (store) => {
          const c = await store.createCollection(name, {
            dim: opts.dim,
            space: opts.space as Space,
            ...(opts.tenant === undefined ? {} : { tenant: opts.tenant }),
            ...(M === undefined ? {} : { M }),
            ...(opts.efConstruction === undefined ? {} : { efConstruction: opts.efConstruction }),
          });
          const s = c.stats();
          output(
            opts,
            {
              name: s.name,
              id: s.id,
              dim: s.dim,
              space: s.space,
              M: c.info.M,
              efConstruction: c.info.efConstruction,
              tenant: s.tenant ?? null,
              dekVersion: s.dekVersion,
            },
            () =>
              `created collection ${s.name} (${s.space}, dim ${s.dim}, M ${c.info.M}, ` +
              `efConstruction ${c.info.efConstruction}, DEK v${s.dekVersion})`,
          );
        });
      },
    );

  storeOptions(col.command('list').description('list collections'))
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      await withStore(
        opts,
        async (store) => {
          const list = store.listCollections();
          output(opts, list, () =>
            list.length === 0
              ? 'no collections'
              : list
                  .map((c) => `${c.name}\t${c.space}\tdim ${c.dim}\t${c.count} records${c.tenant ? `\ttenant ${c.tenant}` : ''}`)
                  .join('\n'),
          );
        },
        { readOnly: true, lazy: true },
      );
    });

  storeOptions(
    col.command('drop <name>').description('drop a collection: destroys its data keys, removes its files (asks first unless --yes)'),
  )
    .option('--yes', 'do not ask for confirmation (needed without a terminal)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & { yes?: boolean }) => {
      await withStore(opts, async (store) => {
        store.collection(name);
        await confirmOrRefuse(opts, `drop collection "${name}"? Its data keys are destroyed and its files removed`, name);
        await store.dropCollection(name);
        output(opts, { dropped: name }, () => `dropped collection ${name} (its data keys are destroyed)`);
      });
    });
}
