import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CorruptDataError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { checkKekConfigs, type KekConfig } from '../keys/kek-config.js';
import { fsyncDir, mkdirs, writeFileAtomic } from '../util/durable.js';
import { isId } from '../util/ids.js';

/**
 * The CLI's KEK configuration for one store: a JSON file outside the data
 * directory, written by `init` and found by store id, or named with
 * `--config` / VECTORSEAL_CONFIG. It names every KEK the CLI may contact for
 * the store; the data directory never adds to it.
 *
 *   { "format": "vectorseal-config", "version": 1, "storeId": "<id>",
 *     "dir": "<data directory, informative>",
 *     "keks": { "<name>": { "provider": "...", "keyId": "...", "config": { ... } } } }
 */

export const CONFIG_FORMAT = 'vectorseal-config';
export const CONFIG_ENV = 'VECTORSEAL_CONFIG';

export interface StoreConfig {
  storeId: string;
  dir?: string;
  keks: Record<string, KekConfig>;
}

/** Where the config files of stores live: $XDG_CONFIG_HOME/vectorseal/stores (default ~/.config/...). */
export function configDir(): string {
  const base = process.env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  return join(base, 'vectorseal', 'stores');
}

/** The config file of a store: `--config`, else VECTORSEAL_CONFIG, else the one under {@link configDir} for its id. */
export function configPath(storeId: string | undefined, explicit?: string): string {
  const given = explicit ?? process.env[CONFIG_ENV];
  if (given) return resolve(given);
  if (!isId(storeId)) throw new InvalidArgumentError('no store id to find the config file by; pass --config <file>');
  return join(configDir(), `${storeId}.json`);
}

/**
 * Reads a store's config file; undefined when it does not exist (a
 * store whose KEKs are all local keys in the key directory needs none).
 */
export async function readStoreConfig(file: string, storeId?: string): Promise<StoreConfig | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new CorruptDataError('config file is not valid JSON', { file, reason: 'parse', cause: err });
  }
  if (typeof raw !== 'object' || raw === null || raw['format'] !== CONFIG_FORMAT || raw['version'] !== 1) {
    throw new CorruptDataError(`not a vectorseal config file (expected "format": "${CONFIG_FORMAT}", "version": 1)`, {
      file,
      reason: 'header',
    });
  }
  if (!isId(raw['storeId'])) throw new CorruptDataError('config file has no valid "storeId"', { file, reason: 'schema' });
  if (storeId !== undefined && raw['storeId'] !== storeId)
    throw new CorruptDataError(`config file is for store ${raw['storeId']}, not ${storeId}`, { file, reason: 'foreign' });
  let keks: Record<string, KekConfig>;
  try {
    keks = checkKekConfigs(raw['keks']);
  } catch (err) {
    throw new CorruptDataError(`config file: ${(err as Error).message}`, { file, reason: 'schema', cause: err });
  }
  return { storeId: raw['storeId'], ...(typeof raw['dir'] === 'string' ? { dir: raw['dir'] } : {}), keks };
}

/** Writes a store's config file (mode 0600, its directory 0700), atomically. */
export async function writeStoreConfig(file: string, config: StoreConfig): Promise<void> {
  const dir = dirname(file);
  const made = await mkdirs(dir, 0o700);
  if (made !== undefined) await fsyncDir(dirname(made));
  const body = {
    format: CONFIG_FORMAT,
    version: 1,
    storeId: config.storeId,
    ...(config.dir === undefined ? {} : { dir: config.dir }),
    keks: config.keks,
  };
  await writeFileAtomic(file, Buffer.from(`${JSON.stringify(body, null, 2)}\n`, 'utf8'), 0o600);
}

/** Reads the store id from a store directory's STORE file (only to find its config file: the keyring must still verify under it). */
export async function storeIdOf(dir: string): Promise<string | undefined> {
  try {
    const s = JSON.parse(await fs.readFile(join(dir, 'STORE'), 'utf8')) as { storeId?: unknown };
    return isId(s?.storeId) ? s.storeId : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new NotFoundError(`no vectorseal store in ${dir} (create one with \`vectorseal init\`)`);
    return undefined;
  }
}
