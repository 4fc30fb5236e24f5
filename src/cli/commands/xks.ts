import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '../../errors.js';
import { pkcs11TokenOptionsFromFlags, type Pkcs11CliFlags } from '../pkcs11-token-options.js';
import { createXksCredential, loadXksConfig, startXksProxy, validateXksConfig, XksHsm, type XksKeyUsage } from '../../xks/index.js';
import { pkcs11FlagOptions } from '../pkcs11-flags.js';
import { writeFilePlain } from '../../util/durable.js';
import { EXIT } from '../exit-codes.js';

/**
 * `vectorseal xks ...`: run the External Key Store proxy in front of a
 * PKCS#11 token, manage its SigV4 credentials (rotation: add, switch AWS KMS
 * over, remove; `serve` rereads the file on SIGHUP), and manage its keys in
 * the token.
 */
export function registerXksCommands(program: Command): void {
  const xks = program.command('xks').description('External Key Store (XKS) proxy: AWS KMS XKS Proxy API in front of a PKCS#11 HSM');

  const serve = xks
    .command('serve')
    .description('serve the XKS Proxy API over HTTPS (SIGHUP rereads --config: credential rotation without a restart)')
    .requiredOption('--port <port>', 'TCP port (0 picks a free one)', parsePort)
    .requiredOption('--tls-cert <file>', 'PEM server certificate')
    .requiredOption('--tls-key <file>', 'PEM private key for --tls-cert')
    .requiredOption('--audit-file <file>', 'audit log (one JSON line per call, with the request metadata)')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--config <file>', 'proxy configuration (URI prefix, region, credentials, authorization rules)', 'xks-config.json')
    .option('--client-ca <file>', 'mutual TLS: PEM CA that client certificates must chain to')
    .option('--client-cn <cn>', 'mutual TLS: required client certificate subject CN (e.g. cks.kms.us-east-1.amazonaws.com)')
    .option('--hsm-timeout-ms <ms>', 'answer DependencyTimeoutException when the HSM takes longer', '200');
  pkcs11FlagOptions(serve, 'the key token', 'unused').action(
    async (
      opts: {
        port: number;
        tlsCert: string;
        tlsKey: string;
        auditFile: string;
        host: string;
        config: string;
        clientCa?: string;
        clientCn?: string;
        hsmTimeoutMs: string;
      } & Pkcs11CliFlags,
    ) => {
      if (opts.clientCn !== undefined && opts.clientCa === undefined) throw new InvalidArgumentError('--client-cn needs --client-ca');
      const timeout = Number(opts.hsmTimeoutMs);
      if (!Number.isInteger(timeout) || timeout < 1)
        throw new InvalidArgumentError(`--hsm-timeout-ms expected a positive integer, got "${opts.hsmTimeoutMs}"`);
      const config = await loadXksConfig(opts.config);
      const hsm = await XksHsm.open(pkcs11TokenOptionsFromFlags(opts, 'xks serve'));
      try {
        const proxy = await startXksProxy({
          hsm,
          config,
          tls: { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) },
          ...(opts.clientCa === undefined
            ? {}
            : { mtls: { ca: await readFile(opts.clientCa), ...(opts.clientCn === undefined ? {} : { subjectCn: opts.clientCn }) } }),
          port: opts.port,
          host: opts.host,
          auditFile: opts.auditFile,
          hsmTimeoutMs: timeout,
        });
        process.stderr.write(`vectorseal xks listening on ${proxy.url}${config.uriPrefix}\n`);
        process.on('SIGHUP', () => {
          loadXksConfig(opts.config).then(
            (next) => {
              proxy.reload(next);
              process.stderr.write(`vectorseal xks: reloaded ${opts.config} (${next.credentials.length} credentials)\n`);
            },
            (err: unknown) => process.stderr.write(`vectorseal xks: kept the old configuration: ${(err as Error).message}\n`),
          );
        });
        const stop = (): void => {
          proxy
            .close()
            .then(() => hsm.close())
            .then(
              () => process.exit(EXIT.OK),
              () => process.exit(EXIT.INTERNAL),
            );
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        await hsm.close();
        throw err;
      }
    },
  );

  xks
    .command('init-config')
    .description('write a new proxy configuration with one SigV4 credential (printed once)')
    .requiredOption('--uri-prefix <path>', 'XksProxyUriPath, e.g. /example/kms/xks/v1')
    .option('--config <file>', 'where to write it', 'xks-config.json')
    .option('--region <region>', 'the AWS KMS region that signs requests', 'us-east-1')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { uriPrefix: string; config: string; region: string; force?: boolean }) => {
      const credential = createXksCredential();
      const config = validateXksConfig({ uriPrefix: opts.uriPrefix, region: opts.region, credentials: [credential] });
      await writeFilePlain(opts.config, `${JSON.stringify(config, null, 2)}\n`, 0o600, { exclusive: !opts.force });
      process.stdout.write(`wrote ${opts.config}\n${JSON.stringify(consoleFile(config.uriPrefix, credential), null, 2)}\n`);
    });

  xks
    .command('add-credential')
    .description('credential rotation, step 1: add a second credential (printed once); then SIGHUP the proxy')
    .option('--config <file>', 'proxy configuration', 'xks-config.json')
    .action(async (opts: { config: string }) => {
      const config = await loadXksConfig(opts.config);
      const credential = createXksCredential();
      config.credentials.push(credential);
      await writeFilePlain(opts.config, `${JSON.stringify(validateXksConfig(config), null, 2)}\n`, 0o600);
      process.stdout.write(`${JSON.stringify(consoleFile(config.uriPrefix, credential), null, 2)}\n`);
    });

  xks
    .command('remove-credential')
    .description('credential rotation, last step: remove the old credential; then SIGHUP the proxy')
    .requiredOption('--access-key-id <id>', 'the credential to remove')
    .option('--config <file>', 'proxy configuration', 'xks-config.json')
    .action(async (opts: { config: string; accessKeyId: string }) => {
      const config = await loadXksConfig(opts.config);
      const kept = config.credentials.filter((c) => c.accessKeyId !== opts.accessKeyId);
      if (kept.length === config.credentials.length) throw new InvalidArgumentError(`no credential ${opts.accessKeyId} in ${opts.config}`);
      await writeFilePlain(opts.config, `${JSON.stringify(validateXksConfig({ ...config, credentials: kept }), null, 2)}\n`, 0o600);
      process.stdout.write(`removed ${opts.accessKeyId}\n`);
    });

  const createKey = xks
    .command('create-key')
    .description('generate an external key (AES-256, non-extractable) in the token')
    .requiredOption('--id <externalKeyId>', 'the external key id (1-128 of A-Z a-z 0-9 . - _)')
    .addOption(
      new Option('--usage <usage>', 'what the key may do')
        .choices(['encrypt-decrypt', 'encrypt', 'decrypt', 'none'])
        .default('encrypt-decrypt'),
    );
  pkcs11FlagOptions(createKey, 'the key token', 'unused').action(async (opts: { id: string; usage: string } & Pkcs11CliFlags) => {
    await withHsm(opts, (hsm) => hsm.createKey(opts.id, opts.usage as XksKeyUsage));
    process.stdout.write(`created external key ${opts.id} (${opts.usage})\n`);
  });

  for (const [name, enabled] of [
    ['disable-key', false],
    ['enable-key', true],
  ] as const) {
    const cmd = xks
      .command(name)
      .description(`${enabled ? 'enable' : 'disable'} an external key for every proxy on the token`)
      .requiredOption('--id <externalKeyId>', 'the external key id');
    pkcs11FlagOptions(cmd, 'the key token', 'unused').action(async (opts: { id: string } & Pkcs11CliFlags) => {
      await withHsm(opts, (hsm) => hsm.setKeyEnabled(opts.id, enabled));
      process.stdout.write(`${enabled ? 'enabled' : 'disabled'} external key ${opts.id}\n`);
    });
  }
}

async function withHsm(flags: Pkcs11CliFlags, fn: (hsm: XksHsm) => Promise<void>): Promise<void> {
  const hsm = await XksHsm.open(pkcs11TokenOptionsFromFlags(flags, 'xks'));
  try {
    await fn(hsm);
  } finally {
    await hsm.close();
  }
}

/** The JSON the AWS KMS console accepts for an external key store's proxy settings. */
function consoleFile(uriPath: string, credential: { accessKeyId: string; secretAccessKey: string }) {
  return {
    XksProxyUriPath: uriPath,
    XksProxyAuthenticationCredential: { AccessKeyId: credential.accessKeyId, RawSecretAccessKey: credential.secretAccessKey },
  };
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port expected 0-65535, got "${value}"`);
  return n;
}
