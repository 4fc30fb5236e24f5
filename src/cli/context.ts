import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { openStore, type Store } from '../store/index.js';

/** Options every store command accepts. */
export interface StoreCliOptions {
  dir?: string;
  keyDir?: string;
  stagingDir?: string;
  json?: boolean;
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
export async function openFromCli(opts: StoreCliOptions, create = false): Promise<Store> {
  return openStore({
    dir: storeDir(opts),
    create,
    ...(opts.keyDir === undefined ? {} : { keys: { provider: 'local' as const, keyDir: opts.keyDir } }),
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
