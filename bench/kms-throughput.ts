/**
 * Key-service throughput: GenerateDataKey + Decrypt, pre-signed and replayed
 * by a light generator (bench/kms-generator.ts, 32 connections, one request
 * in flight on each) against the service in two shapes:
 *   - one process on the file store;
 *   - two node:cluster workers sharing state through a one-member etcd;
 * and, as the floors under both, a server answering a fixed body
 * (bench/kms-floor-server.ts: no SigV4, policy, crypto or audit) on bare
 * node:http and on the service's own transport (src/kms/http-server.ts), so
 * the HTTP layer's and loopback TCP's share is shown apart from the service's.
 * The shapes run interleaved for `--rounds` rounds (the machine is shared and
 * its load drifts); each shape reports its median round and every round with
 * the load average it ran at. Every service request is still authenticated
 * (SigV4), authorised, audited (its line written before the answer leaves)
 * and answered. Each shape is first warmed up unmeasured (`--warmup`
 * seconds, 2 by default, the same for every shape including the floor), so
 * the figures are a running service's, not its JIT's first seconds; two
 * cluster workers otherwise pay two compilations inside the measured window.
 * Reports requests per second, per server CPU-second (server
 * processes' user+system time from /proc), and the generator's and etcd's CPU
 * apart. Writes bench/results/kms-throughput.json and merges it into
 * bench/results/latest.json (`kmsThroughput`, and goals).
 *
 *   npm run bench:kms [-- --seconds 5 --rounds 3 --warmup 2]
 * Loopback only; bounded in time (at most 60 s per shape and round, 9 rounds).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { createKeyServiceConfig } from '../src/kms/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = process.cwd();
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
const BASE_PORT = Number(process.env.VS_BENCH_KMS_PORT ?? '46200');
const GOAL_PER_CPU = 12_000;
const GOAL_PER_SECOND = 10_000;

function arg(name: string, fallback: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${name} expected a positive number`);
  return Math.min(v, max);
}

/** user+system CPU seconds of processes, from /proc/<pid>/stat (fields 14 and 15). */
async function cpuSeconds(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLK_TCK;
}

function waitLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${out}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
  });
}

async function waitEtcd(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('etcd did not start');
}

interface Shape {
  workers: number;
  store: 'file' | 'etcd' | 'none';
  /** For the floors: node:http or the service's transport. */
  transport?: 'node' | 'lean';
}

interface ShapeResult {
  shape: string;
  workers: number;
  store: 'file' | 'etcd' | 'none';
  loadAverage: string;
  requests: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  serverCpuSeconds: number;
  requestsPerServerCpuSecond: number;
  serverCpuMicrosPerRequest: number;
  generatorCpuSeconds: number;
  etcdCpuSeconds?: number;
}

async function runShape(shape: Shape, index: number, seconds: number, warmupSeconds: number, concurrency: number): Promise<ShapeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vs-bench-kms-'));
  const children: ChildProcess[] = [];
  try {
    let etcdUrl: string | undefined;
    let etcdPid: number | undefined;
    if (shape.store === 'etcd') {
      etcdUrl = `http://127.0.0.1:${BASE_PORT + 10 * index}`;
      const etcd = spawn(
        ETCD_BIN,
        [
          '--name',
          'bench',
          '--data-dir',
          join(dir, 'etcd'),
          '--listen-client-urls',
          etcdUrl,
          '--advertise-client-urls',
          etcdUrl,
          '--listen-peer-urls',
          `http://127.0.0.1:${BASE_PORT + 10 * index + 1}`,
          '--initial-advertise-peer-urls',
          `http://127.0.0.1:${BASE_PORT + 10 * index + 1}`,
          '--initial-cluster',
          `bench=http://127.0.0.1:${BASE_PORT + 10 * index + 1}`,
          '--log-level',
          'error',
        ],
        { stdio: 'ignore' },
      );
      children.push(etcd);
      etcdPid = etcd.pid;
      await waitEtcd(etcdUrl);
    }
    const config = createKeyServiceConfig('us-east-1', '000000000000');
    const port = BASE_PORT + 10 * index + 5;
    const serverArgs =
      shape.store === 'none'
        ? [join(HERE, 'kms-floor-server.js'), '--port', String(port), '--transport', shape.transport ?? 'node']
        : [
            join(HERE, 'kms-server.js'),
            '--workers',
            String(shape.workers),
            '--port',
            String(port),
            '--data-dir',
            join(dir, 'data'),
            ...(etcdUrl ? ['--etcd', etcdUrl] : []),
          ];
    const server = spawn(process.execPath, serverArgs, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, VS_BENCH_KMS_CONFIG: JSON.stringify(config) },
    });
    children.push(server);
    const ready = JSON.parse(await waitLine(server, /\{"ready":true[^\n]*\}/, 30_000)) as { pids: number[] };
    const url = `http://127.0.0.1:${port}`;
    const admin = config.principals[0]!;
    let keyId = 'floor';
    if (shape.store !== 'none') {
      const sdk = new KMSClient({ endpoint: url, region: 'us-east-1', credentials: admin, maxAttempts: 1 });
      keyId = (await sdk.send(new CreateKeyCommand({ Description: 'bench' }))).KeyMetadata!.KeyId!;
      sdk.destroy();
    }
    const generatorArgs = [join(HERE, 'kms-generator.js'), '--url', url, '--key', keyId, '--concurrency', String(concurrency)];
    const generatorEnv = { ...process.env, VS_BENCH_AK: admin.accessKeyId, VS_BENCH_SK: admin.secretAccessKey };
    if (warmupSeconds > 0) {
      // Unmeasured: every server process (each cluster worker compiles its own code) reaches its optimised steady state first.
      const warm = spawn(process.execPath, [...generatorArgs, '--seconds', String(warmupSeconds)], { stdio: 'ignore', env: generatorEnv });
      children.push(warm);
      await new Promise((resolve) => warm.once('exit', resolve));
    }
    const loadAverage = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

    const serverBefore = await cpuSeconds(ready.pids);
    const etcdBefore = etcdPid === undefined ? 0 : await cpuSeconds([etcdPid]);
    const generator = spawn(process.execPath, [...generatorArgs, '--seconds', String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: generatorEnv,
    });
    children.push(generator);
    const report = JSON.parse(await waitLine(generator, /\{"ok":[^\n]*\}/, (seconds + 60) * 1000)) as {
      ok: number;
      errors: number;
      seconds: number;
      generatorCpuSeconds: number;
    };
    const serverCpu = (await cpuSeconds(ready.pids)) - serverBefore;
    const etcdCpu = etcdPid === undefined ? undefined : (await cpuSeconds([etcdPid])) - etcdBefore;
    const result: ShapeResult = {
      shape: shapeName(shape),
      workers: shape.workers,
      store: shape.store,
      loadAverage,
      requests: report.ok,
      errors: report.errors,
      seconds: Number(report.seconds.toFixed(3)),
      requestsPerSecond: Math.round(report.ok / report.seconds),
      serverCpuSeconds: Number(serverCpu.toFixed(2)),
      requestsPerServerCpuSecond: Math.round(report.ok / serverCpu),
      serverCpuMicrosPerRequest: Number(((serverCpu * 1e6) / report.ok).toFixed(1)),
      generatorCpuSeconds: Number(report.generatorCpuSeconds.toFixed(2)),
      ...(etcdCpu === undefined ? {} : { etcdCpuSeconds: Number(etcdCpu.toFixed(2)) }),
    };
    process.stdout.write(
      `[load ${loadAverage}] ${result.shape}: ${result.requestsPerSecond}/s, ` +
        `${result.requestsPerServerCpuSecond} per server CPU-second (${result.serverCpuMicrosPerRequest} µs/request), ` +
        `generator ${result.generatorCpuSeconds} CPU-s` +
        `${etcdCpu === undefined ? '' : `, etcd ${result.etcdCpuSeconds} CPU-s`}, ${result.errors} errors\n`,
    );
    return result;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

function shapeName(shape: Shape): string {
  if (shape.store === 'none' && shape.transport === 'lean') {
    return "floor: the service's transport (src/kms/http-server.ts), fixed answer (no auth, crypto or audit)";
  }
  if (shape.store === 'none') return 'floor: bare node:http, fixed answer (no auth, crypto or audit)';
  return shape.workers === 1 ? 'one process, file store' : `${shape.workers} cluster workers, etcd store`;
}

/** The round with the median requests per server CPU-second (the lower middle for an even count). */
function median(rounds: ShapeResult[]): ShapeResult {
  const sorted = [...rounds].sort((a, b) => a.requestsPerServerCpuSecond - b.requestsPerServerCpuSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 5, 60);
  // --warmup 0 is allowed: measures from a cold start, as runs before the warm-up did.
  const warmupIndex = process.argv.indexOf('--warmup');
  const warmup = warmupIndex < 0 ? 2 : Math.min(Math.max(0, Number(process.argv[warmupIndex + 1]) || 0), 30);
  const concurrency = Math.floor(arg('concurrency', 32, 256));
  const roundCount = Math.floor(arg('rounds', 3, 9));
  const kinds: Shape[] = [
    { workers: 1, store: 'file' },
    { workers: 2, store: 'etcd' },
    { workers: 1, store: 'none', transport: 'node' },
    { workers: 1, store: 'none', transport: 'lean' },
  ];
  const rounds: ShapeResult[][] = kinds.map(() => []);
  for (let r = 0; r < roundCount; r++) {
    // Each round starts with a different shape, so no shape always follows the same one.
    for (let k = 0; k < kinds.length; k++) {
      const i = (k + r) % kinds.length;
      rounds[i]!.push(await runShape(kinds[i]!, i, seconds, warmup, concurrency));
    }
  }
  const medians = rounds.map(median);
  const withRounds = (i: number) => ({
    ...medians[i]!,
    rounds: rounds[i]!.map((x) => ({
      loadAverage: x.loadAverage,
      requestsPerSecond: x.requestsPerSecond,
      requestsPerServerCpuSecond: x.requestsPerServerCpuSecond,
    })),
  });
  const shapes = [withRounds(0), withRounds(1)];
  const floor = withRounds(2);
  const transportFloor = withRounds(3);
  for (const m of medians) {
    const figures =
      `${m.requestsPerSecond}/s, ${m.requestsPerServerCpuSecond} per server CPU-second ` + `(${m.serverCpuMicrosPerRequest} µs/request)`;
    process.stdout.write(`median of ${roundCount}: ${m.shape}: ${figures}\n`);
  }
  const best = shapes.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
  const bestCpu = shapes.reduce((a, b) => (b.requestsPerServerCpuSecond > a.requestsPerServerCpuSecond ? b : a));
  const goals = [
    {
      goal: `key service: ≥ ${GOAL_PER_CPU.toLocaleString('en')} GenerateDataKey + Decrypt per server CPU-second`,
      measured: shapes.map((s) => `${s.requestsPerServerCpuSecond} (${s.shape}, median of ${roundCount})`).join('; '),
      met: bestCpu.requestsPerServerCpuSecond >= GOAL_PER_CPU,
    },
    {
      goal: `key service: ≥ ${GOAL_PER_SECOND.toLocaleString('en')}/s on one 2-core machine with the generator beside it`,
      measured: shapes.map((s) => `${s.requestsPerSecond}/s (${s.shape}, median of ${roundCount})`).join('; '),
      met: best.requestsPerSecond >= GOAL_PER_SECOND,
    },
  ];
  const result = {
    benchmark: 'kms-throughput',
    operations: ['GenerateDataKey', 'Decrypt'],
    concurrency,
    secondsPerShape: seconds,
    warmupSecondsPerShape: warmup,
    rounds: roundCount,
    cpus: cpus().length,
    loadAverage: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
    node: process.version,
    date: new Date().toISOString(),
    shapes,
    floor,
    transportFloor,
    goals,
  };
  const resultsDir = join(ROOT, 'bench', 'results');
  await writeFile(join(resultsDir, 'kms-throughput.json'), `${JSON.stringify(result, null, 2)}\n`);
  // Merged into latest.json: this run's figures replace the previous ones, other suites' entries stay.
  const latestFile = join(resultsDir, 'latest.json');
  const latest = JSON.parse(await readFile(latestFile, 'utf8').catch(() => '{}')) as { goals?: { goal: string }[] } & Record<
    string,
    unknown
  >;
  latest.kmsThroughput = result;
  latest.goals = [...(latest.goals ?? []).filter((g) => !g.goal.startsWith('key service:')), ...goals];
  await writeFile(latestFile, `${JSON.stringify(latest, null, 2)}\n`);
  for (const g of goals) process.stdout.write(`${g.met ? 'met   ' : 'MISSED'} ${g.goal}: ${g.measured}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
