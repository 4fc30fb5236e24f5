import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { pkcs11TokenOptionsFromFlags, type Pkcs11CliFlags } from '../keys/pkcs11-flags.js';
import { openStore, type KeysOption, type Store } from '../store/index.js';
import { pkcs11FlagOptions } from './pkcs11-flags.js';

/** Options every store command accepts. */
export interface StoreCliOptions {
  dir?: string;
  keyDir?: string;
  stagingDir?: string;
  json?: boolean;
}

/** How `init` picks the store's KEK. */
export interface KekCliOptions extends Pkcs11CliFlags {
  kek?: string;
  kmsKey?: string;
  kmsEndpoint?: string;
  kmsRegion?: string;
}

/** Adds the KEK choice of `init`: the local default, an AWS KMS (or key service) key, or a PKCS#11 token. */
export function kekOptions(cmd: Command): Command {
  return pkcs11FlagOptions(
    cmd
      .option('--kek <provider>', 'where the KEK lives: local (default), aws-kms or pkcs11', 'local')
      .option('--kms-key <arn|alias>', 'aws-kms: the KMS key (key id, ARN, alias/name or alias ARN)')
      .option('--kms-endpoint <urls>', "aws-kms: endpoint, e.g. vectorseal's key service http://127.0.0.1:4600, or several comma-separated (failover between them) (default: the SDK's)")
      .option('--kms-region <region>', "aws-kms: region (default: the SDK's configuration chain)"),
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
      const config: Record<string, string> = {};
      if (opts.kmsEndpoint) config['endpoint'] = opts.kmsEndpoint;
      if (opts.kmsRegion) config['region'] = opts.kmsRegion;
      return { provider: 'aws-kms', keyId: opts.kmsKey, config };
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

/** Adds --dir, --key-dir and --staging-dir to a command. */
export function storeOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'store directory (default: env VECTORSEAL_DIR)')
    .option('--key-dir <dir>', 'local master key directory (default: env VECTORSEAL_KEY_DIR or ~/.config/vectorseal/keys)')
    .option('--staging-dir <dir>', 'where hnswlib index files are staged (default: a RAM-backed location such as /dev/shm)');
}

export function storeDir(opts: StoreCliOptions): string {
  const dir = opts.dir ?? process.env['VECTORSEAL_DIR'];
  if (!dir) throw new InvalidArgumentError('no store directory: pass --dir or set VECTORSEAL_DIR');
  return resolve(dir);
}

/** Opens the store the options name; `create` for `init`. */
export async function openFromCli(opts: StoreCliOptions & KekCliOptions, create = false): Promise<Store> {
  const keys = create ? await keysFromCli(opts) : opts.keyDir === undefined ? undefined : { provider: 'local' as const, keyDir: opts.keyDir };
  return openStore({
    dir: storeDir(opts),
    create,
    ...(keys === undefined ? {} : { keys }),
    ...(opts.stagingDir === undefined ? {} : { stagingDir: opts.stagingDir }),
  });
}

/** Runs `fn` with an open store and always closes it. */
export async function withStore<T>(opts: StoreCliOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openFromCli(opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Prints `value` as JSON with --json, else the human text. */
export function output(opts: { json?: boolean }, value: unknown, human: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

export function parseIntOption(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} expected an integer in ${min}..${max}, got "${v}"`);
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
