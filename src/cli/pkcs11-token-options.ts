import { InvalidArgumentError } from '../errors.js';
import type { Pkcs11RootKeyOptions } from '../kms/index.js';
import type { Pkcs11TokenOptions } from '../pkcs11/token.js';

/** The PKCS#11 command-line flags, as commander parses them (`--pkcs11-module --token|--slot --pin-env|--pin-file --key-label`). */
export interface Pkcs11CliFlags {
  pkcs11Module?: string;
  token?: string;
  slot?: string;
  pinEnv?: string;
  pinFile?: string;
  keyLabel?: string;
}

/**
 * Token options from the flags: the module, exactly one of token label or
 * slot, and exactly one PIN source (the PIN itself is never a command-line
 * argument). `usage` names the flag that asked for PKCS#11, for the errors.
 */
export function pkcs11TokenOptionsFromFlags(flags: Pkcs11CliFlags, usage: string): Pkcs11TokenOptions {
  if (flags.pkcs11Module === undefined) throw new InvalidArgumentError(`${usage} needs --pkcs11-module <path>`);
  if ((flags.token === undefined) === (flags.slot === undefined))
    throw new InvalidArgumentError(`${usage} needs one of --token <label> or --slot <id>`);
  if ((flags.pinEnv === undefined) === (flags.pinFile === undefined)) {
    throw new InvalidArgumentError(`${usage} needs one of --pin-env <VAR> or --pin-file <path> (the PIN is never a command-line argument)`);
  }
  const options: Pkcs11TokenOptions = { module: flags.pkcs11Module };
  if (flags.token !== undefined) options.token = flags.token;
  if (flags.slot !== undefined) {
    const slot = Number(flags.slot);
    if (!Number.isSafeInteger(slot) || slot < 0)
      throw new InvalidArgumentError(`--slot expected a non-negative integer, got "${flags.slot}"`);
    options.slot = slot;
  }
  if (flags.pinEnv !== undefined) options.pinEnv = flags.pinEnv;
  if (flags.pinFile !== undefined) options.pinFile = flags.pinFile;
  return options;
}

/** The `kms serve` flags for a PKCS#11 root, as parsed by commander. */
export type Pkcs11RootCliFlags = Pkcs11CliFlags;

/** Options for {@link Pkcs11RootKey.open} from `--pkcs11-module --token|--slot --pin-env|--pin-file [--key-label]`. */
export function pkcs11RootOptionsFromFlags(flags: Pkcs11RootCliFlags): Pkcs11RootKeyOptions {
  const options: Pkcs11RootKeyOptions = pkcs11TokenOptionsFromFlags(flags, '--root pkcs11');
  if (flags.keyLabel !== undefined) options.keyLabel = flags.keyLabel;
  return options;
}
