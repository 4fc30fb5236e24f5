/**
 * Page benchmark: seal and open MB/s for 4, 16 and 64 KiB pages, measured side
 * by side in one run, against the hardware limit `openssl speed -evp
 * aes-256-gcm` that the benchmark runs itself with the same time budget.
 *
 * Contenders (each verified before it is timed):
 *   native       the addon's page engine, one thread, one cipher context reused
 *   native-batch the pool's code path on the calling thread alone, over the same
 *                4 MiB batches as native-pool: the base of the all-cores scaling
 *   native-pool  the worker pool: the caller's thread plus workers, all cores
 *   node         the node:crypto page engine (the fallback)
 *   cipheriv     a plain createCipheriv / createDecipheriv loop per 16 KiB page,
 *                what a user would write by hand
 *   openssl      `openssl speed -elapsed -evp aes-256-gcm [-decrypt] -bytes N -seconds S`
 *
 * All figures are wall-clock. On a shared machine they are noisy: each cell is
 * the best of several rounds, run in rotating order, so that every contender
 * is treated alike; compare the ratios, which are measured side by side.
 *
 * Run: `npm run bench:pages [-- --quick] [--rounds R] [--seconds S] [--sizes 4,16,64]` (compiles bench/tsconfig.json into
 * dist/bench-build, runs it, writes bench/results/pages.json). Importable:
 * {@link runPageBench} returns the numbers without printing or writing.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CHUNK_SIZE, TAG_SIZE, chunkNonce, sealedSize, type ChunkEngine } from '../src/crypto/engine.js';
import { loadNativeEngine } from '../src/crypto/native-engine.js';
import { nodeEngine } from '../src/crypto/node-engine.js';
import { CryptoPool, sharedBuffer } from '../src/crypto/pool.js';

const run = promisify(execFile);

export type Op = 'seal' | 'open';
export type Contender = 'native' | 'native-batch' | 'native-pool' | 'node' | 'cipheriv' | 'openssl';

export interface PageBenchOptions {
  /** Page sizes in bytes; default 4, 16 and 64 KiB. */
  sizes?: number[];
  /** Whole seconds per contender, op, size and round (openssl gets the same). Default 1. */
  seconds?: number;
  /** Rounds; each contender's best round is reported. Default 3, or 1 with quick. */
  rounds?: number;
  quick?: boolean;
  /** Progress lines; default silent. */
  log?: (line: string) => void;
}

export interface PageBenchRow {
  pageSize: number;
  op: Op;
  /** MB/s (10^6 bytes of plaintext per second, wall clock) per contender; absent when it could not run. */
  mbps: Partial<Record<Contender, number>>;
  /**
   * MB/s per second of CPU time (openssl: its own user time; ours: the whole
   * process, so for native-pool the CPU of every thread): what the code costs
   * whatever else runs on the machine. native-pool close to native here means
   * the pool adds no work, so its scaling is bounded by idle cores only.
   */
  cpuMbps: Partial<Record<Contender, number>>;
}

export interface PageBenchResult {
  machine: { cpu: string; cores: number; node: string; openssl: string; nodeOpenssl: string; loadAverage: number[] };
  seconds: number;
  rounds: number;
  poolThreads: number;
  rows: PageBenchRow[];
  /** Ratios per page size and op. */
  ratios: {
    pageSize: number;
    op: Op;
    /** Wall clock, side by side. */
    nativeToOpenssl?: number | undefined;
    /** Per CPU-second: what the code costs, whatever else runs on the machine. */
    nativeToOpensslCpu?: number | undefined;
    /** native-pool over native-batch, wall clock: same buffers, all threads vs the calling thread alone. */
    allCoresScaling?: number | undefined;
    /** native-pool over native-batch per CPU-second: 1 when the pool spends no CPU beyond the crypto itself. */
    poolCpuEfficiency?: number | undefined;
    nativeToCipheriv?: number | undefined;
    nativeToCipherivCpu?: number | undefined;
    nativeToNode?: number | undefined;
  }[];
}

const MB = 1e6;

/** A set of distinct pages, about 256 KiB in all (cache-resident, like openssl speed's buffer). */
function pageSet(pageSize: number): Buffer[] {
  const count = Math.max(4, Math.ceil((256 * 1024) / pageSize));
  return Array.from({ length: count }, () => randomBytes(pageSize));
}

const chunksOf = (pageSize: number): number => Math.max(1, Math.ceil(pageSize / CHUNK_SIZE));

/** MB/s by wall clock and, for single-threaded contenders, by CPU time (robust on a busy machine). */
interface Sample {
  wall: number;
  cpu?: number;
}

/** Runs `step` (which processes `bytesPerStep` bytes) for `seconds`. */
function timeSync(seconds: number, bytesPerStep: number, step: () => void): Sample {
  for (let i = 0; i < 20; i++) step(); // warm-up
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let steps = 0;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 16; i++) step();
    steps += 16;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpu0);
  const bytes = steps * bytesPerStep;
  return { wall: bytes / (Number(now - start) / 1e9) / MB, cpu: bytes / ((cpu.user + cpu.system) / 1e6) / MB };
}

async function timeAsync(seconds: number, bytesPerStep: number, step: () => Promise<unknown>): Promise<Sample> {
  for (let i = 0; i < 3; i++) await step();
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  // process.cpuUsage counts every thread of the process, workers included: the pool's cost per byte on all cores.
  const cpu0 = process.cpuUsage();
  let steps = 0;
  let now = start;
  while (now < deadline) {
    await step();
    steps++;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpu0);
  const bytes = steps * bytesPerStep;
  return { wall: bytes / (Number(now - start) / 1e9) / MB, cpu: bytes / ((cpu.user + cpu.system) / 1e6) / MB };
}

function fail(what: string): never {
  throw new Error(`page benchmark: ${what} produced wrong output; refusing to time it`);
}

/** Reference ciphertexts: each page sealed by the node:crypto engine at counter i × chunksPerPage. */
function referenceSealed(key: Buffer, base: Buffer, pages: Buffer[]): Buffer[] {
  const cipher = nodeEngine.cipher(key);
  const perPage = chunksOf(pages[0]?.length ?? 1);
  const out = pages.map((p, i) => {
    const o = Buffer.alloc(sealedSize(p.length));
    cipher.seal(base, i * perPage, p, o);
    return o;
  });
  cipher.dispose();
  return out;
}

/** One engine's page loop, verified against the reference, then timed. */
function benchEngine(engine: ChunkEngine, op: Op, key: Buffer, base: Buffer, pages: Buffer[], sealed: Buffer[], seconds: number): Sample {
  const pageSize = pages[0]?.length ?? 0;
  const perPage = chunksOf(pageSize);
  const cipher = engine.cipher(key);
  try {
    const outs = (op === 'seal' ? sealed : pages).map((b) => Buffer.alloc(b.length));
    const inputs = op === 'seal' ? pages : sealed;
    const call = (i: number): number =>
      op === 'seal'
        ? cipher.seal(base, i * perPage, inputs[i] as Buffer, outs[i] as Buffer)
        : cipher.open(base, i * perPage, inputs[i] as Buffer, outs[i] as Buffer);
    for (let i = 0; i < pages.length; i++) call(i);
    const expected = op === 'seal' ? sealed : pages;
    outs.forEach((o, i) => o.equals(expected[i] as Buffer) || fail(`${engine.name} ${op}`));
    let i = 0;
    return timeSync(seconds, pageSize, () => {
      call(i);
      i = i + 1 === pages.length ? 0 : i + 1;
    });
  } finally {
    cipher.dispose();
  }
}

/** createCipheriv / createDecipheriv per 16 KiB piece of a page, allocating as node:crypto does. */
function cipherivPage(op: Op, key: Buffer, base: Buffer, firstCounter: number, input: Buffer, nonce: Buffer): Buffer {
  const parts: Buffer[] = [];
  if (op === 'seal') {
    for (let at = 0, c = firstCounter; at < input.length; at += CHUNK_SIZE, c++) {
      const cipher = createCipheriv('aes-256-gcm', key, chunkNonce(base, c, nonce));
      parts.push(cipher.update(input.subarray(at, at + CHUNK_SIZE)), cipher.final(), cipher.getAuthTag());
    }
  } else {
    const sealedChunk = CHUNK_SIZE + TAG_SIZE;
    for (let at = 0, c = firstCounter; at < input.length; at += sealedChunk, c++) {
      const end = Math.min(input.length, at + sealedChunk);
      const decipher = createDecipheriv('aes-256-gcm', key, chunkNonce(base, c, nonce));
      decipher.setAuthTag(input.subarray(end - TAG_SIZE, end));
      parts.push(decipher.update(input.subarray(at, end - TAG_SIZE)), decipher.final());
    }
  }
  return Buffer.concat(parts);
}

function benchCipheriv(op: Op, key: Buffer, base: Buffer, pages: Buffer[], sealed: Buffer[], seconds: number): Sample {
  const pageSize = pages[0]?.length ?? 0;
  const perPage = chunksOf(pageSize);
  const inputs = op === 'seal' ? pages : sealed;
  const expected = op === 'seal' ? sealed : pages;
  const nonce = Buffer.alloc(12);
  inputs.forEach(
    (input, i) => cipherivPage(op, key, base, i * perPage, input, nonce).equals(expected[i] as Buffer) || fail(`createCipheriv ${op}`),
  );
  let i = 0;
  return timeSync(seconds, pageSize, () => {
    cipherivPage(op, key, base, i * perPage, inputs[i] as Buffer, nonce);
    i = i + 1 === pages.length ? 0 : i + 1;
  });
}

/** The pool over one batch of pages per call (about 4 MiB, so that dispatch is a small share of a call). */
async function benchPool(
  pool: CryptoPool,
  op: Op,
  key: Buffer,
  base: Buffer,
  pages: Buffer[],
  sealed: Buffer[],
  seconds: number,
): Promise<Sample> {
  const pageSize = pages[0]?.length ?? 0;
  const perBatch = Math.max(pool.threads * 4, Math.ceil((4 * 1024 * 1024) / pageSize));
  const perPage = chunksOf(pageSize);
  const plain = sharedBuffer(perBatch * pageSize);
  const sealedPage = sealedSize(pageSize);
  const ct = sharedBuffer(perBatch * sealedPage);
  for (let p = 0; p < perBatch; p++) plain.set(pages[p % pages.length] as Buffer, p * pageSize);
  // Reference for the batch: page p at counter p × perPage.
  const ref = nodeEngine.cipher(key);
  for (let p = 0; p < perBatch; p++)
    ref.seal(base, p * perPage, plain.subarray(p * pageSize, (p + 1) * pageSize), ct.subarray(p * sealedPage));
  ref.dispose();
  const out = sharedBuffer(op === 'seal' ? ct.length : plain.length);
  const step = (): Promise<number> =>
    op === 'seal' ? pool.seal(key, base, 0, plain, out, { pageSize }) : pool.open(key, base, 0, ct, out, { pageSize });
  await step();
  if (!out.equals(op === 'seal' ? ct : plain)) fail(`pool ${op}`);
  void sealed;
  return timeAsync(seconds, perBatch * pageSize, step);
}

/**
 * `openssl speed` for one size and direction, twice: with -elapsed (wall
 * clock, like the other contenders' `wall`) and without (openssl divides by its
 * own user CPU time, like their `cpu`). Undefined when openssl is not installed.
 */
async function opensslSpeed(op: Op, pageSize: number, seconds: number): Promise<Sample | undefined> {
  const wall = await opensslOnce(op, pageSize, seconds, true);
  const cpu = await opensslOnce(op, pageSize, seconds, false);
  return wall === undefined ? undefined : { wall, ...(cpu === undefined ? {} : { cpu }) };
}

async function opensslOnce(op: Op, pageSize: number, seconds: number, elapsed: boolean): Promise<number | undefined> {
  const args = [
    'speed',
    ...(elapsed ? ['-elapsed'] : []),
    '-mr',
    '-evp',
    'aes-256-gcm',
    ...(op === 'open' ? ['-decrypt'] : []),
    '-bytes',
    String(pageSize),
    '-seconds',
    String(seconds),
  ];
  try {
    const { stdout } = await run('openssl', args, { timeout: (seconds + 30) * 1000 });
    // Machine-readable line: +F:<n>:AES-256-GCM:<bytes per second>
    const line = stdout.split('\n').find((l) => l.startsWith('+F:'));
    const value = line ? Number(line.split(':').at(-1)) : NaN;
    return Number.isFinite(value) ? value / MB : undefined;
  } catch {
    return undefined;
  }
}

async function opensslVersion(): Promise<string> {
  try {
    return (await run('openssl', ['version'])).stdout.trim();
  } catch {
    return 'not installed';
  }
}

const round = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x * 100) / 100);
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : round(a / b);

/** Runs the page benchmark and returns the numbers (prints nothing unless `log` is given). */
export async function runPageBench(options: PageBenchOptions = {}): Promise<PageBenchResult> {
  const quick = options.quick ?? false;
  // openssl speed takes whole seconds; every contender gets the same budget per round.
  const seconds = Math.max(1, Math.round(options.seconds ?? 1));
  const rounds = Math.max(1, options.rounds ?? (quick ? 1 : 3));
  const sizes = options.sizes ?? [4096, 16384, 65536];
  const log = options.log ?? ((): void => undefined);
  const native = loadNativeEngine();
  const pool = new CryptoPool({ workers: Math.max(1, availableParallelism() - 1), engine: native ?? nodeEngine });
  // The same pool code path and 4 MiB buffers on the calling thread alone: the base of the all-cores scaling.
  const single = new CryptoPool({ workers: 0, engine: native ?? nodeEngine });
  // Contenders that openssl is not compared with get half the budget in quick mode.
  const side = quick ? seconds / 2 : seconds;
  const key = randomBytes(32);
  const base = randomBytes(12);
  const rows: PageBenchRow[] = [];
  try {
    for (const pageSize of sizes) {
      const pages = pageSet(pageSize);
      const sealed = referenceSealed(key, base, pages);
      for (const op of ['seal', 'open'] as const) {
        const mbps: PageBenchRow['mbps'] = {};
        const cpuMbps: PageBenchRow['cpuMbps'] = {};
        const contenders: [Contender, () => Promise<Sample | undefined> | Sample | undefined][] = [
          ['openssl', () => opensslSpeed(op, pageSize, seconds)],
          ['native', () => (native ? benchEngine(native, op, key, base, pages, sealed, seconds) : undefined)],
          ['native-batch', () => benchPool(single, op, key, base, pages, sealed, side)],
          ['native-pool', () => benchPool(pool, op, key, base, pages, sealed, side)],
          ['node', () => benchEngine(nodeEngine, op, key, base, pages, sealed, side)],
          ['cipheriv', () => benchCipheriv(op, key, base, pages, sealed, side)],
        ];
        // Rounds, each contender once per round in a rotating order; the best round counts for every contender alike.
        for (let r = 0; r < rounds; r++) {
          for (let k = 0; k < contenders.length; k++) {
            const [name, measure] = contenders[(k + r) % contenders.length] as (typeof contenders)[number];
            const value = await measure();
            const cpuNote = value?.cpu === undefined ? '' : ` (${value.cpu.toFixed(0)} per CPU-second)`;
            log(
              `  ${String(pageSize / 1024).padStart(2)} KiB ${op} ${name.padEnd(11)} round ${r + 1}: ` +
                `${value === undefined ? 'n/a' : value.wall.toFixed(0)} MB/s${cpuNote}`,
            );
            if (value === undefined) continue;
            mbps[name] = Math.max(mbps[name] ?? 0, round(value.wall) as number);
            if (value.cpu !== undefined) cpuMbps[name] = Math.max(cpuMbps[name] ?? 0, round(value.cpu) as number);
          }
        }
        rows.push({ pageSize, op, mbps, cpuMbps });
      }
    }
  } finally {
    await pool.close();
    await single.close();
    key.fill(0);
  }
  const ratios = rows.map((r) => ({
    pageSize: r.pageSize,
    op: r.op,
    nativeToOpenssl: ratio(r.mbps.native, r.mbps.openssl),
    nativeToOpensslCpu: ratio(r.cpuMbps.native, r.cpuMbps.openssl),
    allCoresScaling: ratio(r.mbps['native-pool'], r.mbps['native-batch']),
    poolCpuEfficiency: ratio(r.cpuMbps['native-pool'], r.cpuMbps['native-batch']),
    nativeToCipheriv: ratio(r.mbps.native, r.mbps.cipheriv),
    nativeToCipherivCpu: ratio(r.cpuMbps.native, r.cpuMbps.cipheriv),
    nativeToNode: ratio(r.mbps.native, r.mbps.node),
  }));
  return {
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      node: process.version,
      openssl: await opensslVersion(),
      nodeOpenssl: process.versions.openssl ?? 'unknown',
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    seconds,
    rounds,
    poolThreads: pool.threads,
    rows,
    ratios,
  };
}

/**
 * The `hotPath` block of bench/results/latest.json (issue 4) at one page size
 * (16 KiB by default): seal and open MB/s of the native engine on one core,
 * openssl's figures, the ratios, the all-cores scaling and the node:crypto
 * fallback. awsEsdkMBps is the full benchmark's to fill in.
 */
export function hotPathSummary(result: PageBenchResult, pageSize = 16384): Record<string, unknown> {
  const row = (op: Op): PageBenchRow | undefined => result.rows.find((r) => r.pageSize === pageSize && r.op === op);
  const q = (op: Op): PageBenchResult['ratios'][number] | undefined => result.ratios.find((r) => r.pageSize === pageSize && r.op === op);
  const seal = row('seal');
  const open = row('open');
  return {
    pageSize,
    opensslMBps: { seal: seal?.mbps.openssl, open: open?.mbps.openssl },
    sealMBps: seal?.mbps.native,
    openMBps: open?.mbps.native,
    ratioToOpenssl: { seal: q('seal')?.nativeToOpenssl, open: q('open')?.nativeToOpenssl },
    ratioToOpensslCpu: { seal: q('seal')?.nativeToOpensslCpu, open: q('open')?.nativeToOpensslCpu },
    allCoresMBps: { seal: seal?.mbps['native-pool'], open: open?.mbps['native-pool'] },
    allCoresScaling: { seal: q('seal')?.allCoresScaling, open: q('open')?.allCoresScaling },
    nodeCryptoMBps: { seal: seal?.mbps.node, open: open?.mbps.node },
    createCipherivMBps: { seal: seal?.mbps.cipheriv, open: open?.mbps.cipheriv },
    ratioToCreateCipheriv: { seal: q('seal')?.nativeToCipheriv, open: q('open')?.nativeToCipheriv },
  };
}

/** The result as a Markdown table plus the ratio lines. */
export function formatPageBench(result: PageBenchResult): string {
  const names: Contender[] = ['openssl', 'native', 'native-batch', 'native-pool', 'node', 'cipheriv'];
  const lines = [
    `| page | op | ${names.join(' | ')} | native/openssl | native/openssl per CPU-s | all cores | pool CPU efficiency | native/cipheriv |`,
    `|---|---|${names.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`,
  ];
  result.rows.forEach((r, i) => {
    const q = result.ratios[i];
    const fmt = (x: number | undefined, suffix = ''): string => (x === undefined ? 'n/a' : `${x.toFixed(suffix ? 2 : 0)}${suffix}`);
    lines.push(
      `| ${r.pageSize / 1024} KiB | ${r.op} | ${names.map((n) => fmt(r.mbps[n])).join(' | ')} | ` +
        `${fmt(q?.nativeToOpenssl, '×')} | ${fmt(q?.nativeToOpensslCpu, '×')} | ` +
        `${fmt(q?.allCoresScaling, '×')} | ${fmt(q?.poolCpuEfficiency, '×')} | ` +
        `${fmt(q?.nativeToCipheriv, '×')} |`,
    );
  });
  lines.push(
    '',
    `MB/s of plaintext (10^6 B/s, wall clock), best of ${result.rounds} round(s) ` +
      `of ${result.seconds} s per cell; native-pool = ${result.poolThreads} threads (caller + workers).`,
    `${result.machine.cpu}, ${result.machine.cores} cores (load average ` +
      `${result.machine.loadAverage.join(' ')} at the end), ` +
      `Node ${result.machine.node} (OpenSSL ${result.machine.nodeOpenssl}), ${result.machine.openssl}.`,
  );
  return lines.join('\n');
}

/** The repository root: the nearest directory above this file with a package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const flag = (name: string): number | undefined => {
    const at = process.argv.indexOf(name);
    return at > 0 ? Number(process.argv[at + 1]) : undefined;
  };
  const seconds = flag('--seconds');
  const rounds = flag('--rounds');
  const sizes = process.argv.includes('--sizes')
    ? String(process.argv[process.argv.indexOf('--sizes') + 1])
        .split(',')
        .map((k) => Number(k) * 1024)
    : undefined;
  const result = await runPageBench({
    quick,
    ...(seconds ? { seconds } : {}),
    ...(rounds ? { rounds } : {}),
    ...(sizes ? { sizes } : {}),
    log: (l) => console.error(l),
  });
  console.log(formatPageBench(result));
  const dir = join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'pages.json'),
    `${JSON.stringify({ date: new Date().toISOString(), quick, hotPath: hotPathSummary(result), ...result }, null, 2)}\n`,
  );
  console.log(`\nwrote ${join(dir, 'pages.json')}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
