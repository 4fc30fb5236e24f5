import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../../src/index.js';
import { discoverCrashPoints, typicalHits } from './crash-points.js';
import {
  applyToModel,
  collectionModel,
  parseChildLog,
  unwrapEveryDek,
  verifyStore,
  type ChildLog,
  type StoreModel,
  type WireOp,
} from './model.js';
import { DIST_DIR, WRITER_SCRIPT } from './paths.js';
import { Rng } from './rng.js';

export interface CrashCampaignOptions {
  /** SIGKILLs to reach (children that end without being killed do not count). */
  killPoints: number;
  /** Stores worked on at once, each by its own chain of writers. */
  lanes: number;
  seed: number;
  /** A scratch directory (stores and keys go under it). */
  root: string;
  /**
   * Operations a writer runs before it stops by itself (default 35: most
   * kills come well before, and a writer that runs out costs a whole run).
   */
  writerBudget?: number;
  log?: (line: string) => void;
}

export interface PointTally {
  killed: number;
  survived: number;
  notReached: number;
}

export interface CrashReport {
  seed: number;
  killPoints: number;
  survived: number;
  /** Writers that finished their budget before their crash point came up (verified all the same). */
  notReached: number;
  byMode: { point: PointTally; timer: PointTally };
  byPoint: Record<string, PointTally>;
  acknowledgedOps: number;
  inflightAtKill: number;
  inflightFoundApplied: number;
  lostAcknowledgedWrites: number;
  tornBatches: number;
  wrongResults: number;
  keysLost: number;
  notWritable: number;
  writerErrors: number;
  reopenFailures: number;
  failures: string[];
  crashPointsKnown: string[];
  durationMs: number;
}

interface ChildResult {
  signal: NodeJS.Signals | null;
  code: number | null;
  log: ChildLog;
  stderr: string;
}

function runWriter(
  dir: string,
  keyDir: string,
  seed: number,
  budget: number,
  crashAt: string | undefined,
  killAfterReadyMs: number | undefined,
  killAfterSpawnMs: number | undefined,
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['VECTORSEAL_CRASH_AT'];
    delete env['VECTORSEAL_MASTER_KEY'];
    if (crashAt) env['VECTORSEAL_CRASH_AT'] = crashAt;
    const child = spawn(process.execPath, [WRITER_SCRIPT(), dir, keyDir, String(seed), String(budget)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    if (killAfterSpawnMs !== undefined) timer = setTimeout(kill, killAfterSpawnMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (killAfterReadyMs !== undefined && timer === undefined && out.includes('ready\n')) timer = setTimeout(kill, killAfterReadyMs);
    });
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, log: parseChildLog(out), stderr: err });
    });
  });
}

/**
 * Kills writer processes with SIGKILL at random named crash points and at
 * random moments, and after each kill reopens the store in this process to
 * check it against everything the writers had acknowledged.
 */
export async function runCrashCampaign(options: CrashCampaignOptions): Promise<CrashReport> {
  const started = Date.now();
  const points = await discoverCrashPoints(DIST_DIR());
  const rng = new Rng(options.seed);
  const report: CrashReport = {
    seed: options.seed,
    killPoints: 0,
    survived: 0,
    notReached: 0,
    byMode: { point: { killed: 0, survived: 0, notReached: 0 }, timer: { killed: 0, survived: 0, notReached: 0 } },
    byPoint: {},
    acknowledgedOps: 0,
    inflightAtKill: 0,
    inflightFoundApplied: 0,
    lostAcknowledgedWrites: 0,
    tornBatches: 0,
    wrongResults: 0,
    keysLost: 0,
    notWritable: 0,
    writerErrors: 0,
    reopenFailures: 0,
    failures: [],
    crashPointsKnown: points,
    durationMs: 0,
  };
  const fail = (text: string): void => {
    if (report.failures.length < 40) report.failures.push(text);
    options.log?.(`FAIL ${text}`);
  };
  let launched = 0;
  const maxRuns = options.killPoints * 3 + 20;

  const lane = async (laneNo: number): Promise<void> => {
    const dir = join(options.root, `lane${laneNo}`, 'data');
    const keyDir = join(options.root, `lane${laneNo}`, 'keys');
    mkdirSync(join(options.root, `lane${laneNo}`), { recursive: true });
    const model: StoreModel = new Map();
    let probe = 0;
    while (report.killPoints < options.killPoints && launched < maxRuns) {
      launched++;
      const seed = rng.int(2 ** 31);
      const byPoint = rng.next() < 0.6;
      const point = byPoint ? rng.pick(points) : undefined;
      const crashAt = point === undefined ? undefined : `${point}#${1 + rng.int(typicalHits(point))}`;
      // A tenth of the timed kills land while the writer is still opening (recovery code).
      const early = !byPoint && rng.next() < 0.1;
      const t0 = Date.now();
      const r = await runWriter(
        dir,
        keyDir,
        seed,
        options.writerBudget ?? 35,
        crashAt,
        !byPoint && !early ? rng.int(400) : undefined,
        early ? 60 + rng.int(400) : undefined,
      );
      const killed = r.signal === 'SIGKILL';
      const label = crashAt ?? 'timer';
      const tally = (report.byPoint[point ?? 'timer'] ??= { killed: 0, survived: 0, notReached: 0 });
      const modeTally = report.byMode[byPoint ? 'point' : 'timer'];
      if (killed) {
        report.killPoints++;
        tally.killed++;
        modeTally.killed++;
      } else {
        report.notReached++;
        tally.notReached++;
        modeTally.notReached++;
      }
      const acked = new Set(r.log.acked);
      for (const n of r.log.acked) {
        const op = r.log.ops.get(n);
        if (op) applyToModel(model, op);
      }
      report.acknowledgedOps += acked.size;
      const inflight: WireOp[] = [...r.log.ops].filter(([n]) => !acked.has(n)).map(([, op]) => op);
      if (r.log.errors.length > 0 || (!killed && r.code !== 0)) {
        report.writerErrors++;
        fail(
          `lane ${laneNo} seed ${seed} ${label}: writer failed (` +
            `${r.log.errors.map((e) => `${e.code} ${e.message}`).join('; ') || `exit ${r.code}`}) ` +
            `${r.stderr.slice(-600)}`,
        );
      }
      if (killed) report.inflightAtKill += inflight.filter((o) => o.t === 'u' || o.t === 'd').length;
      const t1 = Date.now();
      const ok = await checkAfterKill(
        dir,
        keyDir,
        model,
        inflight,
        { lane: laneNo, n: probe++ },
        (text) => fail(`lane ${laneNo} seed ${seed} ${label}: ${text}`),
        report,
      );
      if (ok && killed) {
        report.survived++;
        tally.survived++;
        modeTally.survived++;
      }
      options.log?.(
        `[lane ${laneNo}] ${killed ? 'killed' : 'ran out'} at ${label} (seed ${seed}): ${acked.size} acked, ` +
          `${inflight.length} in flight, ${ok ? 'ok' : 'FAILED'} (writer ${t1 - t0} ms, ` +
          `check ${Date.now() - t1} ms) — ${report.killPoints}/${options.killPoints}`,
      );
    }
  };
  await Promise.all(Array.from({ length: options.lanes }, (_, i) => lane(i)));
  report.durationMs = Date.now() - started;
  return report;
}

async function checkAfterKill(
  dir: string,
  keyDir: string,
  model: StoreModel,
  inflight: WireOp[],
  probe: { lane: number; n: number },
  fail: (text: string) => void,
  report: CrashReport,
): Promise<boolean> {
  let store: Store | undefined;
  try {
    store = await openStore({ dir, create: true, keys: { provider: 'local', keyDir }, maxSegments: 3 });
  } catch (err) {
    report.reopenFailures++;
    fail(`reopen failed: ${(err as { code?: string }).code ?? 'UNTYPED'} ${(err as Error).message}`);
    return false;
  }
  let ok = true;
  try {
    const v = verifyStore(store, model, inflight);
    report.inflightFoundApplied += v.applied;
    report.lostAcknowledgedWrites += v.lost;
    report.tornBatches += v.torn;
    report.wrongResults += v.wrong;
    for (const p of v.problems) fail(p);
    if (v.lost + v.torn + v.wrong > 0) ok = false;
    const bad = await unwrapEveryDek(store);
    report.keysLost += bad.length;
    for (const b of bad) fail(`DEK does not unwrap: ${b}`);
    if (bad.length > 0) ok = false;
    // Writable: one more durable write and a flush; the next reopen checks it.
    const names = store.listCollections().map((c) => c.name);
    if (names.length > 0) {
      try {
        const name = names[0] as string;
        const probeId = `p${probe.lane}-${probe.n}`;
        const vector = Array.from({ length: 8 }, (_, j) => 5000 + probe.lane * 1000 + probe.n + j / 8);
        const metadata = { probe: probeId };
        await store.collection(name).upsert({ id: probeId, vector, metadata });
        collectionModel(model, name).set(probeId, { vector, metadata });
        // The acknowledged write proves the store writable; a flush as well on every fifth check
        // (the writers flush and compact all the time, so skipping it elsewhere only saves time).
        if (probe.n % 5 === 0) await store.collection(name).flush();
      } catch (err) {
        report.notWritable++;
        ok = false;
        fail(`store not writable after reopen: ${(err as { code?: string }).code ?? 'UNTYPED'} ${(err as Error).message}`);
      }
    }
  } catch (err) {
    ok = false;
    report.wrongResults++;
    fail(`check threw: ${(err as { code?: string }).code ?? 'UNTYPED'} ${(err as Error).message}`);
  } finally {
    await store.close({ flush: false }).catch((err: unknown) => {
      ok = false;
      fail(`close failed: ${(err as Error).message}`);
    });
  }
  return ok;
}
