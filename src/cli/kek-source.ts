import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { defaultLocalKeyDir } from '../keys/key-manager.js';
import { LocalKekProvider } from '../keys/local.js';
import { keysFromCli, type KekCliOptions, type StoreCliOptions } from './context.js';
import { kmsFlagOptions } from './kms-flags.js';
import { pkcs11FlagOptions } from './pkcs11-flags.js';

/**
 * Where a new KEK is (`kek add`, `restore --kek`): the provider plus the options of
 * `init --kek` (KMS key, endpoint, region; PKCS#11 module, token, PIN source, label).
 */
export type KekSourceOptions = Omit<KekCliOptions, 'kek'> & { kek?: string; provider?: string; keyId?: string; kekKeyDir?: string };

export function kekSourceOptions(cmd: Command, flag: string, description: string): Command {
  cmd
    .option(flag, description)
    .option('--key-id <id>', 'local: the new local key id (default: derived from the name)')
    .option(
      '--kek-key-dir <dir>',
      "local: directory of the new local key (default: --key-dir, else the default key directory); keep it apart from the store's",
    );
  return pkcs11FlagOptions(kmsFlagOptions(cmd, 'aws-kms'), 'pkcs11', 'KEK label on the token (default: the KEK name)');
}

/** A keyring entry for a new KEK; a local key (or a PKCS#11 key on the token) is created when missing. */
export async function kekEntryFromCli(
  opts: StoreCliOptions & KekSourceOptions,
  provider: string,
  defaultId: string,
): Promise<{ provider: string; keyId: string; config?: Record<string, string> }> {
  if (provider === 'local') {
    const keyDir = resolve(opts.kekKeyDir ?? opts.keyDir ?? defaultLocalKeyDir());
    const keyId = opts.keyId ?? `kek-${defaultId}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
    await (await LocalKekProvider.init({ keyId, keyDir })).close();
    return { provider: 'local', keyId, config: { keyDir } };
  }
  const keys = await keysFromCli({ ...opts, kek: provider, keyLabel: opts.keyLabel ?? defaultId.slice(0, 64) });
  if (!keys || !('keyId' in keys)) throw new InvalidArgumentError(`--provider expected local, aws-kms or pkcs11, got "${provider}"`);
  return { provider: keys.provider, keyId: keys.keyId, ...(keys.config === undefined ? {} : { config: keys.config }) };
}
