import { Option, type Command } from 'commander';

/** Adds the PKCS#11 flags to a command; `when` says when they apply, `keyLabel` what --key-label names. */
export function pkcs11FlagOptions(cmd: Command, when: string, keyLabel: string): Command {
  return cmd
    .option('--pkcs11-module <path>', `${when}: the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so`)
    .option('--token <label>', `${when}: the token label`)
    .addOption(new Option('--slot <id>', `${when}: the slot id, instead of --token`).conflicts('token'))
    .option('--pin-env <name>', `${when}: environment variable holding the user PIN`)
    .addOption(new Option('--pin-file <path>', `${when}: file holding the user PIN (mode 0600)`).conflicts('pinEnv'))
    .option('--key-label <label>', `${when}: ${keyLabel}`);
}
