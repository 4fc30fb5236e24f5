import { resolve } from 'node:path';
import type { Command } from 'commander';
import { backupStore, restoreBackup, verifyBackup } from '../../backup/index.js';
import { InvalidArgumentError, ReadOnlyError, SnapshotBusyError } from '../../errors.js';
import { liveLockHolder } from '../../storage/lock.js';
import type { Store } from '../../store/index.js';
import { readTarget, pickSnapshot } from '../../backup/target.js';
import { configPath, readStoreConfig, writeStoreConfig } from '../config-file.js';
import { output, parseIntOption, storeDir, storeOptions, withStore, type StoreCliOptions } from '../context.js';
import { kekEntryFromCli, kekSourceOptions, type KekSourceOptions } from '../kek-source.js';
import { progressBar } from '../progress.js';

/** Backups a lazy reader tries, each on a newer snapshot, while its writer keeps flushing. */
const BACKUP_ATTEMPTS = 3;

/**
 * `vectorseal backup`, `backup verify` and `restore` (which can rewrap the
 * restored DEKs under another KEK).
 */
export function registerBackupCommands(program: Command): void {
  const backup = storeOptions(
    program.command('backup').description('back up the store (or some collections) into a directory; incremental, encrypted, MACed'),
  )
    .option('--to <dir>', 'backup directory (later backups into it store only what changed)')
    .option('--collections <names>', 'comma-separated collection names (default: all)')
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions & { to?: string; collections?: string }) => {
      if (!opts.to) throw new InvalidArgumentError('backup needs --to <dir>');
      const to = opts.to;
      const run = async (store: Store): Promise<void> => {
        const bar = progressBar(opts, 'backup [{bar}] {value}/{total} files', { clearOnComplete: true });
        const backupOnce = (): ReturnType<typeof backupStore> =>
          backupStore(store, {
            to,
            ...(opts.collections === undefined ? {} : { collections: splitList(opts.collections) }),
            onProgress: (p) => bar.update(p.files, p.totalFiles),
          });
        const report = await (async () => {
          // A lazy reader's cut is taken when the backup runs: a flush of the writer since the snapshot means a newer one.
          for (let attempt = 1; ; attempt++) {
            try {
              return await backupOnce();
            } catch (err) {
              if (!(err instanceof SnapshotBusyError) || !store.readOnly || attempt >= BACKUP_ATTEMPTS) throw err;
              await store.refresh();
            }
          }
        })().finally(() => bar.stop());
        output(opts, report, () =>
          [
            `snapshot ${report.snapshot} of store ${report.storeId} in ${report.to}`,
            ...report.collections.map(
              (c) => `  - ${c.name}: manifest generation ${c.generation}, ${c.segmentFiles} segment file(s), ${c.walFiles} WAL file(s)`,
            ),
            ...report.skipped.map((c) => `  - ${c.name}: SKIPPED (${c.code})`),
            `  ${report.files} files, ${report.bytes} bytes; copied ${report.copied} (${report.copiedBytes} ` +
              `bytes), already stored ${report.reused} (${report.reusedBytes} bytes)`,
            `  manifest: ${report.manifest} (HMAC-SHA-256 under the store's backup key)`,
          ].join('\n'),
        );
      };
      // A snapshot, so a backup runs beside the application that holds the store. Only a store's
      // first backup writes (it adds the backup key to the keyring), and only when nobody holds the store.
      // Lazily: a backup copies ciphertext and needs no collection's data in memory (store/collection-cut.ts).
      try {
        await withStore(opts, run, { readOnly: true, lazy: true });
      } catch (err) {
        if (!(err instanceof ReadOnlyError) || (await liveLockHolder(storeDir(opts)))) throw err;
        await withStore(opts, run, { lazy: true });
      }
    });

  backup
    .command('verify')
    .description(
      'check a backup: structure, hashes and extra files without keys; with --with-keys also MACs, DEK unwrapping and every file opening',
    )
    .requiredOption('--from <dir>', 'backup directory')
    .option('--with-keys', 'also check MACs, that every DEK unwraps and every segment, manifest and WAL file opens')
    .option('--snapshot <n>', 'snapshot to open with keys (default: the newest)', parseIntOption('--snapshot', 1, 99_999_999))
    .option('--key-dir <dir>', 'local master key directory (default: env VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys)')
    .option('--config <file>', "the store's KEK configuration (default: env VECTORSEAL_CONFIG, else found by the backup's store id)")
    .option('--json', 'print JSON')
    .action(async (_local: unknown, cmd: Command) => {
      // `backup` has --json and --key-dir too and parses them first wherever they stand: take both levels.
      const opts = cmd.optsWithGlobals<{
        from: string;
        withKeys?: boolean;
        snapshot?: number;
        keyDir?: string;
        config?: string;
        json?: boolean;
      }>();
      const bar = progressBar(opts, 'verify [{bar}] {value}/{total} files', { clearOnComplete: true });
      const keks = opts.withKeys ? await backupKekConfig(opts.from, opts.config) : undefined;
      const report = await verifyBackup(opts.from, {
        ...(keks === undefined ? {} : { keks: keks.keks }),
        withKeys: opts.withKeys ?? false,
        ...(opts.snapshot === undefined ? {} : { snapshot: opts.snapshot }),
        ...(opts.keyDir === undefined ? {} : { localKeyDir: opts.keyDir }),
        onProgress: (p) => bar.update(p.files, p.totalFiles),
      }).finally(() => bar.stop());
      output(opts, { ok: true, ...report }, () =>
        [
          `backup ${report.dir} is intact: ${report.snapshots.length} snapshot(s), ${report.files} files, ` +
            `${report.bytes} bytes, hashes match, no extra file`,
          report.mac === 'verified'
            ? `  MACs verified; snapshot ${report.opened!.snapshot}: ${report.opened!.deks} DEK(s) unwrap, ` +
              `${report.opened!.manifests} manifest(s), ${report.opened!.segments} segment(s), ` +
              `${report.opened!.walFiles} WAL file(s) (${report.opened!.walRecords} records) open`
            : "  MACs not checked (no keys): pass --with-keys to prove the manifests are the store's and that everything opens",
        ].join('\n'),
      );
    });

  kekSourceOptions(
    storeOptions(
      program
        .command('restore')
        .description(
          'restore a backup into a new store directory, verifying everything first; optionally rewrap its DEKs under another KEK',
        ),
    ),
    '--kek <provider>',
    'rewrap under a new KEK: local, aws-kms or pkcs11',
  )
    .requiredOption('--from <dir>', 'backup directory')
    .option('--snapshot <n>', 'snapshot (default: the newest)', parseIntOption('--snapshot', 1, 99_999_999))
    .option('--collections <names>', 'comma-separated collection names (default: all in the snapshot)')
    .option('--kek-name <name>', 'name of the new KEK in the restored keyring', 'restored')
    .option('--kek-tenant <tenant>', "rewrap this tenant's DEKs (default: the store's default KEKs)")
    .option('--keep-old-kek', 'keep the old KEKs attached as well')
    .option('--json', 'print JSON')
    .action(
      async (
        opts: StoreCliOptions &
          KekSourceOptions & {
            from: string;
            snapshot?: number;
            collections?: string;
            kekName: string;
            kekTenant?: string;
            keepOldKek?: boolean;
          },
      ) => {
        if (!opts.dir) throw new InvalidArgumentError('restore needs --dir <new store directory>');
        const bar = progressBar(opts, 'restore [{bar}] {value}/{total} files', { clearOnComplete: true });
        const config = await backupKekConfig(opts.from, opts.config);
        const newKek = opts.kek === undefined ? undefined : await kekEntryFromCli(opts, opts.kek, opts.kekName);
        const report = await restoreBackup({
          keks: config.keks,
          from: opts.from,
          dir: opts.dir,
          ...(opts.snapshot === undefined ? {} : { snapshot: opts.snapshot }),
          ...(opts.collections === undefined ? {} : { collections: splitList(opts.collections) }),
          ...(opts.keyDir === undefined ? {} : { localKeyDir: opts.keyDir }),
          ...(opts.stagingDir === undefined ? {} : { stagingDir: opts.stagingDir }),
          ...(opts.kek === undefined
            ? {}
            : {
                rewrap: {
                  name: opts.kekName,
                  entry: newKek as NonNullable<typeof newKek>,
                  ...(opts.kekTenant === undefined ? {} : { tenant: opts.kekTenant }),
                  ...(opts.keepOldKek ? { keepOld: true } : {}),
                },
              }),
          onProgress: (p) => bar.update(p.files, p.totalFiles),
        }).finally(() => bar.stop());
        // The restored store has the backup's store id: its config file gains the new KEK (the old ones stay for the original).
        if (newKek)
          await writeStoreConfig(config.file, {
            storeId: report.storeId,
            dir: resolve(opts.dir),
            keks: { ...config.keks, [opts.kekName]: newKek },
          });
        output(opts, report, () =>
          [
            `restored snapshot ${report.snapshot} of store ${report.storeId} into ${report.dir} (same store id)`,
            ...report.collections.map((c) => `  - ${c.name}: ${c.count} records`),
            ...(report.rewrap
              ? [
                  `  DEKs rewrapped under KEK "${report.rewrap.kek}" (${report.rewrap.attached} wrap(s))` +
                    `${report.rewrap.detached.length ? `; detached ${report.rewrap.detached.join(', ')}` : ''}`,
                ]
              : []),
          ].join('\n'),
        );
      },
    );
}

/** The KEK configuration for a backup's store: --config, VECTORSEAL_CONFIG, else the config file of the backup's store id. */
async function backupKekConfig(
  from: string,
  explicit: string | undefined,
): Promise<{ file: string; keks: NonNullable<Awaited<ReturnType<typeof readStoreConfig>>>['keks'] }> {
  const storeId = pickSnapshot(await readTarget(from)).manifest.storeId;
  const file = configPath(storeId, explicit);
  const config = await readStoreConfig(file, storeId);
  return { file, keks: config?.keks ?? {} };
}

function splitList(v: string): string[] {
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0) throw new InvalidArgumentError('--collections expected a comma-separated list of names');
  return list;
}
