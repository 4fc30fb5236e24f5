import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { pkcs11TokenOptionsFromFlags, type Pkcs11CliFlags } from './pkcs11-token-options.js';
import { openStore, type KeysOption, type Store } from '../store/index.js';
import { configPath, readStoreConfig, storeIdOf, writeStoreConfig } from './config-file.js';
import { kmsConfigFromFlags, kmsFlagOptions, type KmsCliFlags } from './kms-flags.js';
import { pkcs11FlagOptions } from './pkcs11-flags.js';

/** Options every store command accepts. */
export interface StoreCliOptions {
  dir?: string;
  config?: string;
  keyDir?: string;
  stagingDir?: string;
  freshnessAnchor?: string;
  json?: boolean;
}

/** How `init` picks the store's KEK. */
export interface KekCliOptions extends Pkcs11CliFlags, KmsCliFlags {
  kek?: string;
}

/** Adds the KEK choice of `init`: the local default, an AWS KMS (or key service) key, or a PKCS#11 token. */
export function kekOptions(cmd: Command): Command {
  return pkcs11FlagOptions(
    kmsFlagOptions(
      cmd.addOption(new Option('--kek <provider>', 'where the KEK lives').choices(['local', 'aws-kms', 'pkcs11']).default('local')),
      'aws-kms',
    ),
    'pkcs11',
    'KEK label on the token (default: store-kek)',
  );
}

/**
 * The `keys` option of openStore for `init --kek ...`. For pkcs11 the first
 * KEK version is generated inside the token here.
 */
export async function keysFromCli(opts: StoreCliOptions & KekCliOptions): Promise<KeysOption | undefined> {
  switch (opts.kek ?? 'local') {
    case 'local':
      return opts.keyDir === undefined ? undefined : { provider: 'local', keyDir: opts.keyDir };
    case 'aws-kms': {
      if (!opts.kmsKey) throw new InvalidArgumentError('--kek aws-kms needs --kms-key <arn|alias>');
      return { provider: 'aws-kms', keyId: opts.kmsKey, config: kmsConfigFromFlags(opts) };
    }
    case 'pkcs11': {
      const { Pkcs11KekProvider, pkcs11KeyringConfig } = await import('../keys/pkcs11.js');
      const hsm = { ...pkcs11TokenOptionsFromFlags(opts, '--kek pkcs11'), keyLabel: opts.keyLabel ?? 'store-kek' };
      await (await Pkcs11KekProvider.init(hsm)).close();
      return { provider: 'pkcs11', keyId: hsm.keyLabel, config: pkcs11KeyringConfig(hsm) };
    }
    default:
      throw new InvalidArgumentError(`--kek expected local, aws-kms or pkcs11, got "${String(opts.kek)}"`);
  }
}

/** Adds --dir, --config, --key-dir and --staging-dir to a command. */
export function storeOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'store directory (default: env VECTORSEAL_DIR)')
    .option(
      '--config <file>',
      "the store's KEK configuration (default: env VECTORSEAL_CONFIG, else $XDG_CONFIG_HOME/vectorseal/stores/<storeId>.json)",
    )
    .option('--key-dir <dir>', 'local master key directory (default: env VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys)')
    .option('--staging-dir <dir>', 'where hnswlib index files are staged (default: a RAM-backed location such as /dev/shm)')
    .option(
      '--freshness-anchor <file>',
      'a file outside the store directory holding its newest state, ' +
        'so a rollback of the whole directory is refused (default: env VECTORSEAL_FRESHNESS_ANCHOR)',
    );
}

export function storeDir(opts: StoreCliOptions): string {
  const dir = opts.dir ?? process.env['VECTORSEAL_DIR'];
  if (!dir) throw new InvalidArgumentError('no store directory: pass --dir or set VECTORSEAL_DIR');
  return resolve(dir);
}

/**
 * The KEK configuration the CLI opens a store with: its config file (found
 * by store id, or --config / VECTORSEAL_CONFIG), never anything in the data
 * directory. Undefined when there is no config file (local keys only).
 */
export async function cliKekConfig(
  opts: StoreCliOptions,
): Promise<{ file: string; keks: NonNullable<Parameters<typeof openStore>[0]['keks']> } | undefined> {
  const dir = storeDir(opts);
  const storeId = await storeIdOf(dir);
  const file = configPath(storeId, opts.config);
  const config = await readStoreConfig(file, storeId);
  return config === undefined ? undefined : { file, keks: config.keks };
}

/**
 * Opens the store the options name; `create` for `init`, which writes the
 * store's config file; `readOnly` for the commands that only read (a
 * snapshot beside a running writer, no file written); `lazy` for those that
 * need no vectors (collections read only their manifests: collection-lazy.ts).
 */
export async function openFromCli(
  opts: StoreCliOptions & KekCliOptions,
  create = false,
  how: { readOnly?: boolean; lazy?: boolean } = {},
): Promise<Store> {
  const dir = storeDir(opts);
  const staging = opts.stagingDir === undefined ? {} : { stagingDir: opts.stagingDir };
  if (create) {
    const keys = await keysFromCli(opts);
    const store = await openStore({ dir, create, ...(keys === undefined ? {} : { keys }), ...staging, ...freshnessAnchorOf(opts) });
    try {
      await writeStoreConfig(configPath(store.storeId, opts.config), { storeId: store.storeId, dir, keks: { ...store.keys.kekConfigs } });
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }
  const config = await cliKekConfig(opts);
  return openStore({
    dir,
    ...(config === undefined ? {} : { keks: config.keks }),
    ...(opts.keyDir === undefined ? {} : { keys: { provider: 'local' as const, keyDir: opts.keyDir } }),
    ...staging,
    ...freshnessAnchorOf(opts),
    ...(how.readOnly ? { readOnly: true } : {}),
    ...(how.lazy ? { lazy: true } : {}),
  });
}

/** --freshness-anchor, else VECTORSEAL_FRESHNESS_ANCHOR. */
function freshnessAnchorOf(opts: StoreCliOptions): { freshnessAnchor?: string } {
  const anchor = opts.freshnessAnchor ?? process.env['VECTORSEAL_FRESHNESS_ANCHOR'];
  return anchor ? { freshnessAnchor: resolve(anchor) } : {};
}

/**
 * Runs `fn` with an open store and always closes it; KEKs added meanwhile are
 * recorded in the store's config file. With `readOnly` the store is a
 * snapshot (the read commands: they work while an application holds the
 * store, and write nothing); with `lazy` no collection loads its data
 * unless used.
 */
export async function withStore<T>(
  opts: StoreCliOptions,
  fn: (store: Store) => Promise<T>,
  how: { readOnly?: boolean; lazy?: boolean } = {},
): Promise<T> {
  const store = await openFromCli(opts, false, how);
  const before = Object.keys(store.keys.kekConfigs).length;
  try {
    const result = await fn(store);
    if (Object.keys(store.keys.kekConfigs).length !== before) {
      await writeStoreConfig(configPath(store.storeId, opts.config), {
        storeId: store.storeId,
        dir: store.dir,
        keks: { ...store.keys.kekConfigs },
      });
    }
    return result;
  } finally {
    await store.close();
  }
}

/** Prints `value` as one line of JSON with --json (every stdout line parses alone), else the human text. */
export function output(opts: { json?: boolean }, value: unknown, human: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
}

export function parseIntOption(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} expected an integer in ${min}..${max}, got "${v}"`);
    return n;
  };
}

export function parseJsonOption(name: string): (v: string) => unknown {
  return (v) => {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      throw new InvalidArgumentError(`${name} expected JSON`);
    }
  };
}
