import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { output, storeOptions, withStore, type StoreCliOptions } from '../context.js';
import { kekEntryFromCli, kekSourceOptions, type KekSourceOptions } from '../kek-source.js';

/** `kek add|attach|detach|list`: the KEKs that wrap a store's (or a tenant's) DEKs. */
export function registerKekCommands(program: Command): void {
  const kek = program.command('kek').description('the KEKs of a store: several can wrap every DEK (any one of them opens the data)');

  kekSourceOptions(
    storeOptions(kek.command('add <name>').description('register a KEK under a name (not yet used: attach it)')),
    '--provider <provider>',
    'local, aws-kms or pkcs11',
  )
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & KekSourceOptions) => {
      if (!opts.provider) throw new InvalidArgumentError('kek add needs --provider local|aws-kms|pkcs11');
      const provider = opts.provider;
      await withStore(
        opts,
        async (store) => {
          const entry = await kekEntryFromCli(opts, provider, `${name}-${store.storeId}`);
          await store.keys.addKek(name, entry);
          output(
            opts,
            { added: name, provider: entry.provider, keyId: entry.keyId },
            () => `added KEK "${name}": ${entry.provider} ${entry.keyId} (attach it to wrap DEKs under it)`,
          );
        },
        { lazy: true },
      );
    });

  storeOptions(
    kek.command('attach <name>').description('wrap every DEK of the store (or of a tenant) under this KEK too; data files are not touched'),
  )
    .option('--tenant <tenant>', "the tenant's KEKs instead of the store's")
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & { tenant?: string }) => {
      await withStore(
        opts,
        async (store) => {
          const wrapped = await store.keys.attachKek(name, opts.tenant === undefined ? {} : { tenant: opts.tenant });
          output(
            opts,
            { attached: name, tenant: opts.tenant ?? null, wrapped },
            () => `attached KEK "${name}"${opts.tenant ? ` to tenant ${opts.tenant}` : ''}: ${wrapped} DEK wrap(s) added`,
          );
        },
        { lazy: true },
      );
    });

  storeOptions(
    kek.command('detach <name>').description('stop wrapping DEKs under this KEK (another must remain); data files are not touched'),
  )
    .option('--tenant <tenant>', "the tenant's KEKs instead of the store's")
    .option('--json', 'print JSON')
    .action(async (name: string, opts: StoreCliOptions & { tenant?: string }) => {
      await withStore(
        opts,
        async (store) => {
          const dropped = await store.keys.detachKek(name, opts.tenant === undefined ? {} : { tenant: opts.tenant });
          output(
            opts,
            { detached: name, tenant: opts.tenant ?? null, dropped },
            () => `detached KEK "${name}"${opts.tenant ? ` from tenant ${opts.tenant}` : ''}: ${dropped} wrap(s) removed`,
          );
        },
        { lazy: true },
      );
    });

  storeOptions(kek.command('list').description('every KEK, where it is attached, and whether its provider can be reached'))
    .option('--json', 'print JSON')
    .action(async (opts: StoreCliOptions) => {
      await withStore(
        opts,
        async (store) => {
          const ring = store.keys.keyring;
          const list = (await store.keys.kekHealth()).map((h) => ({
            ...h,
            attachedTo: [
              ...(ring.defaultKeks.includes(h.name) ? ['store'] : []),
              ...Object.entries(ring.tenants)
                .filter(([, t]) => t.keks.includes(h.name))
                .map(([t]) => `tenant:${t}`),
            ],
          }));
          output(opts, list, () =>
            list
              .map(
                (k) =>
                  `${k.name}\t${k.provider}\t${k.keyId}\t` +
                  `${k.reachable ? (k.state ?? '?') : `UNREACHABLE (${k.error ?? k.state ?? '?'})`}\tversion ` +
                  `${k.currentVersion ?? '?'}\t` +
                  `${k.attachedTo.length ? `attached to ${k.attachedTo.join(', ')}` : 'not attached'}`,
              )
              .join('\n'),
          );
        },
        { readOnly: true, lazy: true },
      );
    });
}
