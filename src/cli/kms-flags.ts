import type { Command } from 'commander';

/** The AWS KMS (or key service) flags, as commander parses them. */
export interface KmsCliFlags {
  kmsKey?: string;
  kmsEndpoint?: string;
  kmsRegion?: string;
}

/** Adds `--kms-key --kms-endpoint --kms-region` to a command; `when` says when they apply. */
export function kmsFlagOptions(cmd: Command, when: string): Command {
  return cmd
    .option('--kms-key <arn|alias>', `${when}: the KMS key (key id, ARN, alias/name or alias ARN)`)
    .option(
      '--kms-endpoint <urls>',
      `${when}: endpoint, e.g. vectorseal's key service http://127.0.0.1:4600, or several comma-separated (failover) (default: the SDK's)`,
    )
    .option('--kms-region <region>', `${when}: region (default: the SDK's configuration chain)`);
}

/** The aws-kms provider's config (endpoint, region) from the flags; only the flags given. */
export function kmsConfigFromFlags(flags: KmsCliFlags): Record<string, string> {
  return {
    ...(flags.kmsEndpoint === undefined ? {} : { endpoint: flags.kmsEndpoint }),
    ...(flags.kmsRegion === undefined ? {} : { region: flags.kmsRegion }),
  };
}
