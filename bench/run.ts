/**
 * The benchmark suite: `npm run bench` (full) or `npm run bench -- --quick`
 * (under two minutes on an idle two-core machine).
 *
 * Installs the benchmark-only peers into bench/ when they are missing, then
 * runs, each contender verified before it is timed and all of them side by
 * side in this one run:
 *   pages       bench/pages.ts (fast path, pool, node:crypto, createCipheriv,
 *               openssl speed) interleaved with the AWS Encryption SDK
 *   seal64      page sealing over a 64 MiB buffer (not cache-resident), the
 *               page engine against createCipheriv with no extra copy, paired
 *               rounds beside openssl speed
 *   scale       one collection at scale: vectorseal against the lean plaintext
 *               baseline (writeIndex + one msgpackr file) and SQLCipher with
 *               sqlite-vec: ingest, flush, reopen, search with recall@10,
 *               filtered search at 1%/2%/10%/50%, bytes on disk, memory
 *   rotation    creating 1,000 and 10,000 collections through the public API and
 *               rotating their KEK, and KEK rotation over stores
 *               of growing data size, with every data file fingerprinted
 *   kms load    bench/results/kms-load.json (run when absent)
 *   ingest1m    (only with --only ingest1m) 1,000,000 × 64 through the public API
 *               with background compaction: flush p99 against the median, and
 *               search at the steady-state group count against one group
 *   e2e         (only with --only e2e) the project's former baseline, plaintext
 *               hnswlib with a second copy of every vector: it doubles the
 *               baseline's I/O and so flatters vectorseal; kept for comparison
 * and writes bench/results/latest.json, latest.md and throughput.svg (a quick
 * run writes latest-quick.json, latest-quick.md and throughput-quick.svg, so
 * that it never replaces the full run's figures).
 *
 * Options: --quick, --only pages,seal64,scale,e2e,rotation,kms,ingest1m, --records N (scale, e2e),
 * --ingest-records N (ingest1m), --work-dir DIR,
 * --rerun-kms; --render rewrites latest.md and throughput.svg from latest.json
 * without measuring anything. Progress goes to stderr.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeDefaultPool } from '../src/crypto/pool.js';
import { renderChart } from './lib/chart.js';
import { runEndToEnd } from './lib/end-to-end.js';
import { runIngest1m } from './lib/ingest-1m.js';
import { kmsLoadResult } from './lib/kms-load.js';
import { describeMachine } from './lib/machine.js';
import { renderMarkdown } from './lib/markdown.js';
import { runPageSuite } from './lib/pages-suite.js';
import { resultsDir } from './lib/paths.js';
import { ensurePeers, loadAwsEsdk, loadSqliteCipher, loadSqliteVec } from './lib/peers.js';
import { stderrLog } from './lib/progress.js';
import { rotateCollections, rotateWithData } from './lib/rotation.js';
import { runScale } from './lib/scale.js';
import { runSealLarge } from './lib/seal-large.js';
import { summarize, type Summary, type SuiteRun } from './lib/summary.js';

const SECTIONS = ['pages', 'seal64', 'scale', 'e2e', 'rotation', 'kms', 'ingest1m'] as const;
/** Run unless --only names others; 'e2e' (the old double-I/O baseline) and 'ingest1m' (long) only when named. */
const DEFAULT_SECTIONS: readonly Section[] = ['pages', 'seal64', 'scale', 'rotation', 'kms'];
type Section = (typeof SECTIONS)[number];

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

function chartSubtitle(s: Summary, rounds: number): string {
  return (
    `${s.machine.cpu}, ${s.machine.cores} cores, Node ${s.machine.node}; ` +
    `best of ${rounds} interleaved round(s); ${s.date.slice(0, 10)}`
  );
}

/** Regenerates the Markdown and the chart from a results file (after a change to their layout). */
function render(quick: boolean): void {
  const suffix = quick ? '-quick' : '';
  const dir = resultsDir();
  const summary = JSON.parse(readFileSync(join(dir, `latest${suffix}.json`), 'utf8')) as Summary;
  writeFileSync(join(dir, `latest${suffix}.md`), renderMarkdown(summary).replace('throughput.svg', `throughput${suffix}.svg`));
  const pages = summary.details.pages;
  if (pages) writeFileSync(join(dir, `throughput${suffix}.svg`), renderChart(pages, chartSubtitle(summary, pages.rounds)));
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  if (process.argv.includes('--render')) {
    render(quick);
    return;
  }
  const only = flag('--only')?.split(',') as Section[] | undefined;
  const bad = only?.filter((s) => !SECTIONS.includes(s));
  if (bad && bad.length > 0) throw new RangeError(`--only expected some of ${SECTIONS.join(',')}, got ${bad.join(',')}`);
  const want = (s: Section): boolean => (only ? only.includes(s) : DEFAULT_SECTIONS.includes(s));
  const log = stderrLog;
  const started = Date.now();
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);

  await ensurePeers(log);
  const workDir = flag('--work-dir') ?? mkdtempSync(join(tmpdir(), 'vectorseal-bench-'));
  mkdirSync(workDir, { recursive: true });
  log(`vectorseal benchmark (${quick ? 'quick' : 'full'}), scratch in ${workDir}; load average ${loadAtStart.join(' ')}`);
  const run: Partial<SuiteRun> = {};
  try {
    if (want('pages')) {
      run.pages = await runPageSuite({ sizes: [4096, 16384, 65536], rounds: quick ? 1 : 3, seconds: 1, quick, esdk: loadAwsEsdk(), log });
      await closeDefaultPool();
    }
    if (want('seal64')) {
      log('seal 64 MiB');
      run.sealLarge = await runSealLarge({ rounds: quick ? 3 : 7, log });
    }
    if (want('scale')) {
      const records = Number(flag('--records') ?? (quick ? 10_000 : 50_000));
      run.scale = await runScale({
        count: records,
        dim: 768,
        // The store's defaults (createCollection's M and efConstruction, search's ef for k = 10): the recall
        // goals are "at default settings", and a user who sets nothing gets exactly this graph.
        M: 16,
        efConstruction: 200,
        ef: 64,
        k: 10,
        queries: quick ? 500 : 1000,
        recallQueries: quick ? 50 : 100,
        filteredQueries: quick ? 100 : 200,
        reopenRounds: quick ? 3 : 5,
        leanFlushes: quick ? 2 : 4,
        sqliteQueries: quick ? 10 : 30,
        sqlite: { Database: loadSqliteCipher(), vec: loadSqliteVec() },
        workDir: join(workDir, 'scale'),
        log,
      });
      rmSync(join(workDir, 'scale'), { recursive: true, force: true });
    }
    if (want('e2e')) {
      const records = Number(flag('--records') ?? (quick ? 20_000 : 100_000));
      run.endToEnd = await runEndToEnd({
        count: records,
        dim: 768,
        M: 16,
        // Built identically on both sides and not timed: efConstruction = M keeps a 100k × 768 build
        // affordable on two cores, and changes neither the bytes flushed nor what reopen loads.
        efConstruction: 16,
        ef: 64,
        k: 10,
        queries: 1000,
        reopenRounds: quick ? 3 : 5,
        plaintextFlushes: quick ? 2 : 4,
        sqlcipherRuns: quick ? 1 : 2,
        sqlite: loadSqliteCipher(),
        workDir: join(workDir, 'e2e'),
        log,
      });
      rmSync(join(workDir, 'e2e'), { recursive: true, force: true });
    }
    if (want('rotation')) {
      log('rotation');
      const collections = [];
      collections.push(await rotateCollections(workDir, 1000, quick ? 1 : 3, log, quick ? 200 : 1000));
      collections.push(await rotateCollections(workDir, 10_000, quick ? 1 : 3, log));
      const data = [];
      for (const bytes of quick ? [10e6, 100e6] : [10e6, 1e9]) data.push(await rotateWithData(workDir, bytes, 3, log));
      run.rotation = { collections, data };
    }
    if (want('ingest1m')) {
      // Flush p99 over a million-record ingest, and search at the steady-state group count (bench/lib/ingest-1m.ts).
      run.ingest1m = await runIngest1m({
        count: Number(flag('--ingest-records') ?? (quick ? 200_000 : 1_000_000)),
        dim: 64,
        batch: 1000,
        flushEvery: 100_000,
        queries: 1000,
        recallQueries: 100,
        k: 10,
        workDir: join(workDir, 'ingest1m'),
        log,
      });
    }
    if (want('kms')) {
      const kms = await kmsLoadResult(log, { rerun: process.argv.includes('--rerun-kms'), seconds: quick ? 3 : 10 });
      if (kms) run.kmsLoad = kms;
    }
  } finally {
    if (!flag('--work-dir')) rmSync(workDir, { recursive: true, force: true });
  }

  // A run of some sections keeps the other sections' figures of the last full run, so latest.json stays whole.
  if (only) {
    try {
      const previous = JSON.parse(readFileSync(join(resultsDir(), `latest${quick ? '-quick' : ''}.json`), 'utf8')) as {
        details?: Partial<SuiteRun>;
      };
      for (const [k, v] of Object.entries(previous.details ?? {}))
        if (!(k in run) && v !== undefined) (run as Record<string, unknown>)[k] = v;
    } catch {
      // No earlier results: only the sections run now are reported.
    }
  }
  const machine = await describeMachine();
  const full: SuiteRun = {
    date: new Date().toISOString(),
    quick,
    command: quick ? 'npm run bench -- --quick' : 'npm run bench',
    seconds: Math.round((Date.now() - started) / 1000),
    machine: { ...machine, loadAverageAtStart: loadAtStart },
    ...run,
  };
  const summary = summarize(full);
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const suffix = quick ? '-quick' : '';
  const files = [join(dir, `latest${suffix}.json`), join(dir, `latest${suffix}.md`)];
  writeFileSync(files[0] as string, `${JSON.stringify({ ...summary, seconds: full.seconds }, null, 2)}\n`);
  writeFileSync(files[1] as string, renderMarkdown(summary).replace('throughput.svg', `throughput${suffix}.svg`));
  if (run.pages) {
    const svg = join(dir, `throughput${suffix}.svg`);
    writeFileSync(svg, renderChart(run.pages, chartSubtitle(summary, run.pages.rounds)));
    files.push(svg);
  }
  process.stdout.write(renderMarkdown(summary));
  log(`wrote ${files.join(', ')} in ${full.seconds} s`);
}

await main();
