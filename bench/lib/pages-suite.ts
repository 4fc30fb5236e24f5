import { hotPathSummary, runPageBench, type Contender, type Op, type PageBenchResult } from '../pages.js';
import { EsdkContender } from './aws-esdk.js';
import type { AwsEsdk } from './peers.js';
import type { Log } from './progress.js';
import { ratio } from './stats.js';

/** Every page contender: bench/pages.ts's five, and the AWS Encryption SDK. */
export type SuiteContender = Contender | 'aws-esdk';
export const SUITE_CONTENDERS: readonly SuiteContender[] = [
  'openssl',
  'native',
  'native-batch',
  'native-pool',
  'node',
  'cipheriv',
  'aws-esdk',
];

export interface PageSuiteRow {
  pageSize: number;
  op: Op;
  /** Best round per contender, MB/s wall clock. */
  mbps: Partial<Record<SuiteContender, number>>;
  /** Best round per contender, MB/s per CPU-second (single-threaded contenders). */
  cpuMbps: Partial<Record<SuiteContender, number>>;
  /** Every round's wall-clock MB/s, in round order, to show the spread. */
  rounds: Partial<Record<SuiteContender, number[]>>;
}

export interface PageSuiteResult {
  machine: PageBenchResult['machine'];
  seconds: number;
  rounds: number;
  poolThreads: number;
  rows: PageSuiteRow[];
}

export interface PageSuiteOptions {
  sizes: number[];
  rounds: number;
  seconds: number;
  /** Absent: the AWS SDK column is left out (its peer is not installed). */
  esdk?: AwsEsdk;
  /** bench/pages.ts's quick mode: contenders openssl is not compared with get half the time. */
  quick?: boolean;
  log: Log;
}

/**
 * The page benchmark of bench/pages.ts and the AWS Encryption SDK, side by
 * side: every round runs one round of each (alternating which goes first) so
 * that a busy spell on the shared machine hits both alike; each cell keeps
 * its best round.
 */
export async function runPageSuite(options: PageSuiteOptions): Promise<PageSuiteResult> {
  const { sizes, rounds, seconds, log } = options;
  const esdk = options.esdk ? new EsdkContender(options.esdk) : undefined;
  const rows = new Map<string, PageSuiteRow>();
  const row = (pageSize: number, op: Op): PageSuiteRow => {
    const key = `${pageSize}/${op}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { pageSize, op, mbps: {}, cpuMbps: {}, rounds: {} }));
    return r;
  };
  const record = (r: PageSuiteRow, name: SuiteContender, wall: number | undefined, cpu: number | undefined): void => {
    if (wall !== undefined) {
      r.mbps[name] = Math.max(r.mbps[name] ?? 0, wall);
      (r.rounds[name] ??= []).push(Math.round(wall));
    }
    if (cpu !== undefined) r.cpuMbps[name] = Math.max(r.cpuMbps[name] ?? 0, cpu);
  };
  let last: PageBenchResult | undefined;
  for (let round = 0; round < rounds; round++) {
    const pagesStep = async (): Promise<void> => {
      log(`pages: round ${round + 1}/${rounds} (bench/pages.ts, ${seconds} s per cell)`);
      last = await runPageBench({ sizes, rounds: 1, seconds, quick: options.quick ?? false, log });
      for (const r of last.rows)
        for (const name of Object.keys(r.mbps) as Contender[]) record(row(r.pageSize, r.op), name, r.mbps[name], r.cpuMbps[name]);
    };
    const esdkStep = async (): Promise<void> => {
      if (!esdk) return;
      for (const pageSize of sizes) {
        const s = await esdk.measure(pageSize, seconds);
        log(
          `  ${String(pageSize / 1024).padStart(2)} KiB aws-esdk    round ${round + 1}: ` +
            `seal ${s.seal.toFixed(0)} MB/s, open ${s.open.toFixed(0)} MB/s`,
        );
        record(row(pageSize, 'seal'), 'aws-esdk', s.seal, s.sealCpu);
        record(row(pageSize, 'open'), 'aws-esdk', s.open, s.openCpu);
      }
    };
    if (round % 2 === 0) {
      await pagesStep();
      await esdkStep();
    } else {
      await esdkStep();
      await pagesStep();
    }
  }
  if (!last) throw new Error('page suite ran no round');
  const ordered = sizes.flatMap((s) => (['seal', 'open'] as const).map((op) => row(s, op)));
  for (const r of ordered) {
    for (const m of [r.mbps, r.cpuMbps])
      for (const k of Object.keys(m) as SuiteContender[]) m[k] = Math.round((m[k] as number) * 100) / 100;
  }
  return { machine: last.machine, seconds, rounds, poolThreads: last.poolThreads, rows: ordered };
}

/**
 * Ratios of one row, the figures the goals are stated in; defined as
 * bench/pages.ts defines them (all-cores scaling is the pool over the same
 * batches on one thread), plus the AWS Encryption SDK.
 */
export function rowRatios(r: PageSuiteRow): Record<string, number | undefined> {
  return {
    nativeToOpenssl: ratio(r.mbps.native, r.mbps.openssl),
    nativeToOpensslCpu: ratio(r.cpuMbps.native, r.cpuMbps.openssl),
    allCoresScaling: ratio(r.mbps['native-pool'], r.mbps['native-batch']),
    poolCpuEfficiency: ratio(r.cpuMbps['native-pool'], r.cpuMbps['native-batch']),
    nativeToCipheriv: ratio(r.mbps.native, r.mbps.cipheriv),
    nativeToCipherivCpu: ratio(r.cpuMbps.native, r.cpuMbps.cipheriv),
    nativeToNode: ratio(r.mbps.native, r.mbps.node),
    nativeToAwsEsdk: ratio(r.mbps.native, r.mbps['aws-esdk'], 1),
    nativeToAwsEsdkCpu: ratio(r.cpuMbps.native, r.cpuMbps['aws-esdk'], 1),
  };
}

/** The suite's best-of rows in bench/pages.ts's own result shape, so that its hotPath summary applies as is. */
export function asPageBenchResult(s: PageSuiteResult): PageBenchResult {
  return {
    machine: s.machine,
    seconds: s.seconds,
    rounds: s.rounds,
    poolThreads: s.poolThreads,
    rows: s.rows,
    ratios: s.rows.map((r) => ({ pageSize: r.pageSize, op: r.op, ...rowRatios(r) })),
  };
}

/** bench/pages.ts's hotPath block at 16 KiB, with the AWS Encryption SDK's figures added. */
export function suiteHotPath(s: PageSuiteResult, pageSize = 16384): Record<string, unknown> {
  const row = (op: Op): PageSuiteRow | undefined => s.rows.find((r) => r.pageSize === pageSize && r.op === op);
  const seal = row('seal');
  const open = row('open');
  return {
    ...hotPathSummary(asPageBenchResult(s), pageSize),
    allCoresThreads: s.poolThreads,
    awsEsdkMBps: { seal: seal?.mbps['aws-esdk'], open: open?.mbps['aws-esdk'] },
    ratioToAwsEsdk: {
      seal: seal ? rowRatios(seal)['nativeToAwsEsdk'] : undefined,
      open: open ? rowRatios(open)['nativeToAwsEsdk'] : undefined,
    },
    ratioToAwsEsdkCpu: {
      seal: seal ? rowRatios(seal)['nativeToAwsEsdkCpu'] : undefined,
      open: open ? rowRatios(open)['nativeToAwsEsdkCpu'] : undefined,
    },
  };
}
