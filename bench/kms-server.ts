/**
 * The key service under load for bench/kms-throughput.ts: `--workers N`
 * node:cluster workers share one listening port; with N > 1 they share state
 * through etcd (`--etcd URL`), otherwise the file store is used. Prints one
 * JSON line `{"ready":true,"pids":[...]}` once every worker listens.
 */
import cluster from 'node:cluster';
import { join } from 'node:path';
import { LocalRootKeyFile, startKeyService, type KeyServiceConfig } from '../src/kms/index.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const workers = Number(arg('workers') ?? '1');
const port = Number(arg('port'));
const dataDir = arg('data-dir')!;
const etcd = arg('etcd');
const config = JSON.parse(process.env.VS_BENCH_KMS_CONFIG ?? '{}') as KeyServiceConfig;

async function serve(id: number): Promise<void> {
  await startKeyService({
    port,
    dataDir,
    rootKeyFile: join(dataDir, 'root.key'),
    auditFile: join(dataDir, `audit-${id}.log`),
    config,
    ...(etcd === undefined ? {} : { etcd: { endpoints: [etcd], prefix: 'bench/kms/' } }),
  });
}

if (workers <= 1) {
  await serve(0);
  // A clean exit lets --cpu-prof write its profile.
  process.on('SIGTERM', () => process.exit(0));
  process.stdout.write(`${JSON.stringify({ ready: true, pids: [process.pid] })}\n`);
} else if (cluster.isPrimary) {
  // The root key exists before any worker opens it, so they never race to create it.
  await LocalRootKeyFile.open(join(dataDir, 'root.key'));
  const pids: number[] = [];
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork({ VS_BENCH_WORKER: String(i) });
    pids.push(w.process.pid!);
    w.on('message', (m: unknown) => {
      if (m === 'ready' && ++ready === workers) process.stdout.write(`${JSON.stringify({ ready: true, pids: [process.pid, ...pids] })}\n`);
    });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  process.on('SIGTERM', () => process.exit(0));
  await serve(Number(process.env.VS_BENCH_WORKER));
  process.send!('ready');
}
