import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { pkcs11FlagOptions } from '../pkcs11-flags.js';
import { createAccessKey, createKeyServiceConfig, LocalRootKeyFile, loadKeyServiceConfig, startKeyService } from '../../kms/index.js';
import { pkcs11RootOptionsFromFlags, type Pkcs11RootCliFlags } from '../pkcs11-token-options.js';
import { InvalidArgumentError } from '../../errors.js';
import { writeFilePlain } from '../../util/durable.js';
import { EXIT } from '../exit-codes.js';

/**
 * Adds `vectorseal kms serve` (run the AWS-KMS-compatible key service) and
 * `vectorseal kms init-config` / `kms add-access-key` (write its configuration).
 */
export function registerKmsCommands(program: Command): void {
  const kms = program.command('kms').description("vectorseal's AWS-KMS-compatible key service");

  const serve = kms
    .command('serve')
    .description('serve the AWS KMS JSON API with SigV4 authentication')
    .requiredOption('--port <port>', 'TCP port (0 picks a free one)', parsePort)
    .requiredOption('--data-dir <dir>', 'directory for the key store, root key file and audit log')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--config <file>', 'configuration file (region, account id, access keys and policies)', 'kms-config.json')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--tls-client-ca <file>', 'require client certificates issued by this PEM CA (mutual TLS)')
    .option('--etcd <urls>', 'keep the state in this etcd cluster (comma-separated client URLs) instead of <data-dir>')
    .option('--etcd-prefix <prefix>', 'etcd key prefix (default vectorseal/kms/)')
    .option(
      '--workers <n>',
      'serve from n node:cluster worker processes sharing the port (needs --etcd: the workers share state through it)',
      parseWorkers,
      1,
    )
    .option('--audit-file <file>', 'audit log file (default <data-dir>/audit.log)')
    .addOption(
      new Option('--root <kind>', 'where the root key lives: file (<data-dir>/root.key) or pkcs11 (an HSM token)')
        .choices(['file', 'pkcs11'])
        .default('file'),
    )
    .option(
      '--create-root',
      'create the root key when it does not exist (first start only; without it a missing root key refuses to start)',
    )
    .option(
      '--root-key-file <file>',
      'with --root file: the root key file (default <data-dir>/root.key); every node of a cluster needs the same root key',
    );
  pkcs11FlagOptions(serve, 'with --root pkcs11', 'the root key label (default vectorseal-kms-root)').action(
    async (opts: ServeFlags & Pkcs11RootCliFlags) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
        throw new InvalidArgumentError('--tls-cert and --tls-key go together');
      }
      const tls =
        opts.tlsCert !== undefined && opts.tlsKey !== undefined
          ? {
              cert: await readFile(opts.tlsCert),
              key: await readFile(opts.tlsKey),
              ...(opts.tlsClientCa === undefined ? {} : { clientCa: await readFile(opts.tlsClientCa) }),
            }
          : undefined;
      if (tls === undefined && opts.tlsClientCa !== undefined)
        throw new InvalidArgumentError('--tls-client-ca needs --tls-cert and --tls-key');
      const etcd =
        opts.etcd === undefined
          ? undefined
          : { endpoints: split(opts.etcd), ...(opts.etcdPrefix === undefined ? {} : { prefix: opts.etcdPrefix }) };
      if (opts.workers > 1) {
        if (etcd === undefined) throw new InvalidArgumentError('--workers above 1 needs --etcd: workers keep no state of their own');
        if (cluster.isPrimary) {
          await superviseWorkers(opts);
          return;
        }
      }
      const service = await startKeyService({
        port: opts.port,
        host: opts.host,
        dataDir: opts.dataDir,
        configFile: opts.config,
        auditStdout: true,
        createRoot: opts.createRoot === true,
        ...(opts.auditFile === undefined ? {} : { auditFile: opts.auditFile }),
        ...(opts.rootKeyFile === undefined ? {} : { rootKeyFile: opts.rootKeyFile }),
        ...(tls === undefined ? {} : { tls }),
        ...(etcd === undefined ? {} : { etcd }),
        ...(opts.root === 'pkcs11' ? { rootPkcs11: pkcs11RootOptionsFromFlags(opts) } : {}),
      });
      process.stderr.write(`vectorseal kms listening on ${service.url}\n`);
      const stop = (): void => {
        service.close().then(
          () => process.exit(EXIT.OK),
          () => process.exit(EXIT.INTERNAL),
        );
      };
      // SIGHUP re-reads access keys and policies from --config without dropping a connection.
      process.on('SIGHUP', () => {
        service.reload().then(
          () => process.stderr.write('vectorseal kms reloaded its configuration\n'),
          (err: unknown) => process.stderr.write(`vectorseal kms kept its configuration: ${(err as Error).message}\n`),
        );
      });
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  );

  kms
    .command('init-config')
    .description('write a new configuration with one administrator access key (printed once)')
    .option('--config <file>', 'where to write it', 'kms-config.json')
    .option('--region <region>', 'region used in ARNs and signatures', 'us-east-1')
    .option('--account-id <id>', '12-digit account id used in ARNs', '000000000000')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { config: string; region: string; accountId: string; force?: boolean }) => {
      const config = createKeyServiceConfig(opts.region, opts.accountId);
      await writeFilePlain(opts.config, `${JSON.stringify(config, null, 2)}\n`, 0o600, { exclusive: !opts.force });
      const admin = config.principals[0]!;
      process.stdout.write(`wrote ${opts.config}\naccess key id:     ${admin.accessKeyId}\nsecret access key: ${admin.secretAccessKey}\n`);
    });

  kms
    .command('add-access-key')
    .description('add a principal with a policy to an existing configuration (the secret is printed once)')
    .requiredOption('--name <name>', 'principal name shown in audit lines')
    .option('--config <file>', 'configuration file', 'kms-config.json')
    .option('--operations <ops>', 'comma-separated operations, or *', '*')
    .option('--keys <refs>', 'comma-separated key ids, ARNs or aliases, or *', '*')
    .option('--context <k=v>', 'encryption-context condition, repeatable; v may be a|b|c', collect, [] as string[])
    .action(async (opts: { name: string; config: string; operations: string; keys: string; context: string[] }) => {
      const config = await loadKeyServiceConfig(opts.config);
      const encryptionContext: Record<string, string[]> = {};
      for (const c of opts.context) {
        const eq = c.indexOf('=');
        if (eq <= 0) throw new InvalidArgumentError(`--context expected key=value, got "${c}"`);
        encryptionContext[c.slice(0, eq)] = c.slice(eq + 1).split('|');
      }
      const principal = createAccessKey(opts.name, [
        {
          operations: split(opts.operations),
          keys: split(opts.keys),
          ...(opts.context.length > 0 ? { encryptionContext } : {}),
        },
      ]);
      config.principals.push(principal);
      await writeFilePlain(opts.config, `${JSON.stringify(config, null, 2)}\n`, 0o600);
      process.stdout.write(`access key id:     ${principal.accessKeyId}\nsecret access key: ${principal.secretAccessKey}\n`);
    });
}

interface ServeFlags {
  port: number;
  dataDir: string;
  host: string;
  config: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  etcd?: string;
  etcdPrefix?: string;
  auditFile?: string;
  root: string;
  rootKeyFile?: string;
  createRoot?: boolean;
  workers: number;
}

/**
 * The cluster primary: makes sure the root key file exists before any worker
 * opens it (so they never race to create it), forks the workers, and passes
 * SIGHUP, SIGINT and SIGTERM on to them. It serves no requests itself.
 */
async function superviseWorkers(opts: ServeFlags): Promise<void> {
  if (opts.root === 'file')
    await LocalRootKeyFile.open(opts.rootKeyFile ?? join(opts.dataDir, 'root.key'), { create: opts.createRoot === true });
  const workers = Array.from({ length: opts.workers }, () => cluster.fork());
  let stopping = false;
  for (const w of workers) {
    w.on('exit', (code) => {
      // A worker that dies unasked takes the service down with it rather than leaving it half-served.
      if (!stopping) {
        process.stderr.write(`vectorseal kms worker ${w.process.pid} exited (${code}); stopping\n`);
        stopping = true;
        for (const other of workers) other.kill('SIGTERM');
        process.exitCode = EXIT.INTERNAL;
      }
    });
  }
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal !== 'SIGHUP') stopping = true;
    for (const w of workers) w.process.kill(signal);
  };
  process.on('SIGHUP', forward('SIGHUP'));
  process.once('SIGINT', forward('SIGINT'));
  process.once('SIGTERM', forward('SIGTERM'));
}

function parseWorkers(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`--workers expected 1-64, got "${value}"`);
  return n;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port expected 0-65535, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function split(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
