import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import type { RotationPolicy } from '../../keys/keyring-file.js';
import type { ReencryptionProgress, TenantKekOption } from '../../store/index.js';
import { output, parseIntOption, storeOptions, withStore, type StoreCliOptions } from '../context.js';
import { kmsConfigFromFlags, kmsFlagOptions, type KmsCliFlags } from '../kms-flags.js';
import { progressReporter } from '../progress.js';

interface TenantCreateOptions extends StoreCliOptions, KmsCliFlags {
  ownKek?: string;
  tenantKeyDir?: string;
}

interface PolicyOptions extends StoreCliOptions {
  tenant?: string;
  kekRotationDays?: number;
  dekRotationDays?: number;
  dekMaxPages?: number;
}

/**
 * `tenant create|disable|enable|delete|cancel`, `collection disable|enable`,
 * `maintain`, `rekey` and `policy set`: the key lifecycle from a shell.
 */
export function registerLifecycleCommands(program: Command): void {
  const tenant = program.command('tenant').description('tenants: their own KEKs, disabling, scheduled crypto-shredding');

  kmsFlagOptions(
    storeOptions(tenant.command('create <tenant>').description('create a tenant, keyed under the store KEK or one of its own')),
    'with --own-kek aws-kms',
  )
    .addOption(new Option('--own-kek <provider>', 'give the tenant its own KEK').choices(['local', 'aws-kms']))
    .option('--tenant-key-dir <dir>', "with --own-kek local: where its key lives (default: beside the store's)")
    .option('--json', 'print JSON')
    .action(async (name: string, opts: TenantCreateOptions) => {
      const kek = tenantKek(opts);
      await withStore(
        opts,
        async (store) => {
          const entry = await store.createTenant(name, { kek });
          output(opts, { tenant: name, ...entry }, () => `created tenant ${name} (KEK: ${entry.keks.join(', ')})`);
        },
        { lazy: true },
      );
    });

  for (const [verb, what] of [
    ['disable', "refuse every use of the tenant's keys at once"],
    ['enable', "allow the tenant's keys again"],
    ['cancel', 'cancel a scheduled deletion'],
  ] as const) {
    storeOptions(tenant.command(`${verb} <tenant>`).description(what))
      .option('--json', 'print JSON')
      .action(async (name: string, opts: StoreCliOptions) => {
        await withStore(
          opts,
          async (store) => {
            if (verb === 'disable') await store.disableTenant(name);
            else if (verb === 'enable') await store.enableTenant(name);
            else await store.cancelTenantDeletion(name);
            const state = store.keys.tenant(name).state;
            output(opts, { tenant: name, state }, () => `tenant ${name}: ${state}`);
          },
          { lazy: true },
        );
      });
  }

  storeOptions(tenant.command('delete <tenant>').description('schedule crypto-shredding of the tenant after a waiting period'))
    .option('--after <days>', 'waiting period in days, 7-30', parseIntOption('--after', 7, 30), 30)
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & { after: number }) => {
      await withStore(
        opts,
        async (store) => {
          const when = await store.scheduleTenantDeletion(name, { days: opts.after });
          output(
            opts,
            { tenant: name, state: 'pending-deletion', deleteAfter: when.toISOString() },
            () =>
              `tenant ${name} is scheduled for deletion after ${when.toISOString()}; ` +
              `its keys are refused from now on (\`vectorseal tenant cancel ${name}\` undoes it)`,
          );
        },
        { lazy: true },
      );
    });

  const collection = program.commands.find((c) => c.name() === 'collection') ?? program.command('collection');
  for (const verb of ['disable', 'enable'] as const) {
    storeOptions(
      collection
        .command(`${verb} <name>`)
        .description(verb === 'disable' ? "refuse every use of the collection's keys at once" : "allow the collection's keys again"),
    )
      .option('--json', 'print JSON')
      .action(async (name: string, opts: StoreCliOptions) => {
        await withStore(
          opts,
          async (store) => {
            if (verb === 'disable') await store.disableCollection(name);
            else await store.enableCollection(name);
            output(opts, { collection: name, disabled: verb === 'disable' }, () => `collection ${name}: ${verb}d`);
          },
          { lazy: true },
        );
      });
  }

  storeOptions(
    program.command('maintain').description('shred tenants whose deletion is due, apply rotation policies, finish re-encryptions'),
  )
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      await withStore(
        opts,
        async (store) => {
          const progress = progressReporter(opts);
          const report = await store.maintain({ onProgress: (name, p) => progress.update(`re-encrypting ${name}`, p) });
          progress.stop();
          output(opts, report, () =>
            [
              `maintenance at ${report.now}`,
              `  shredded tenants: ${report.shredded.tenants.join(', ') || 'none'}` +
                `${report.shredded.collections.length ? ` (${report.shredded.collections.length} collection(s) removed)` : ''}`,
              `  KEK rotations: ${report.kekRotations.join(', ') || 'none'}`,
              `  re-keyed: ${report.rekeys.join(', ') || 'none'}`,
              ...report.reencrypted.map(
                (r) =>
                  `  re-encrypted ${r.collection}: ${r.groups} segment group(s)` +
                  `${r.destroyedVersions.length ? `, DEK version(s) ${r.destroyedVersions.join(', ')} destroyed` : ''}`,
              ),
            ].join('\n'),
          );
        },
        { lazy: true },
      );
    });

  storeOptions(
    program.command('rekey <collection>').description('new DEK version for a collection, then re-encrypt its older segments (resumable)'),
  )
    .option('--no-reencrypt', 'only make the new version (new files use it); re-encrypt later with `rekey --resume` or `maintain`')
    .option('--resume', 'do not make a new version: finish the re-encryption of an earlier re-key')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & { reencrypt: boolean; resume?: boolean }) => {
      await withStore(
        opts,
        async (store) => {
          const version = opts.resume ? store.keys.activeDekVersion(store.collection(name).info.id) : await store.rekey(name);
          if (!opts.reencrypt) {
            output(opts, { collection: name, dekVersion: version }, () => `collection ${name}: new files use DEK version ${version}`);
            return;
          }
          const progress = progressReporter(opts);
          const r = await store.reencrypt(name, { onProgress: (p: ReencryptionProgress) => progress.update(`re-encrypting ${name}`, p) });
          progress.stop();
          output(
            opts,
            { collection: name, ...r },
            () =>
              `collection ${name}: DEK version ${r.dekVersion}; ${r.groups} segment group(s) re-encrypted` +
              `${r.destroyedVersions.length ? `; version(s) ${r.destroyedVersions.join(', ')} destroyed` : ''}`,
          );
        },
        { lazy: true },
      );
    });

  const policy = program.command('policy').description('automatic rotation policies, applied by `maintain`');
  storeOptions(policy.command('set').description('set the rotation policy of the store or of one tenant'))
    .option('--tenant <tenant>', "the tenant whose policy to set (default: the store's)")
    .option(
      '--kek-rotation-days <n>',
      'rotate KEKs this many days after the last rotation',
      parseIntOption('--kek-rotation-days', 1, 36_500),
    )
    .option(
      '--dek-rotation-days <n>',
      're-key collections this many days after their DEK was made',
      parseIntOption('--dek-rotation-days', 1, 36_500),
    )
    .option(
      '--dek-max-pages <n>',
      're-key collections once this many pages were sealed under their DEK',
      parseIntOption('--dek-max-pages', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--json', 'print JSON')
    .action(async (opts: PolicyOptions) => {
      const p: RotationPolicy = {
        ...(opts.kekRotationDays === undefined ? {} : { kekRotationDays: opts.kekRotationDays }),
        ...(opts.dekRotationDays === undefined ? {} : { dekRotationDays: opts.dekRotationDays }),
        ...(opts.dekMaxPages === undefined ? {} : { dekMaxPages: opts.dekMaxPages }),
      };
      await withStore(
        opts,
        async (store) => {
          await store.setPolicy(p, opts.tenant === undefined ? {} : { tenant: opts.tenant });
          output(
            opts,
            { ...(opts.tenant === undefined ? {} : { tenant: opts.tenant }), policy: p },
            () => `policy of ${opts.tenant === undefined ? 'the store' : `tenant ${opts.tenant}`}: ${JSON.stringify(p)}`,
          );
        },
        { lazy: true },
      );
    });
}

function tenantKek(opts: TenantCreateOptions): TenantKekOption {
  if (opts.ownKek === undefined) {
    if (opts.kmsKey !== undefined) throw new InvalidArgumentError('--kms-key needs --own-kek aws-kms');
    return 'store';
  }
  if (opts.ownKek === 'local') return { provider: 'local', ...(opts.tenantKeyDir === undefined ? {} : { keyDir: opts.tenantKeyDir }) };
  if (opts.ownKek === 'aws-kms') {
    if (!opts.kmsKey) throw new InvalidArgumentError('--own-kek aws-kms needs --kms-key <arn>');
    return { provider: 'aws-kms', keyId: opts.kmsKey, config: kmsConfigFromFlags(opts) };
  }
  // commander's choices() admits only local and aws-kms.
  throw new InvalidArgumentError(`--own-kek expected local or aws-kms, got "${String(opts.ownKek)}"`);
}
