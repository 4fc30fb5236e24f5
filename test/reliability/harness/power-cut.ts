import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditFilePath, verifyAuditTrail } from '../../../src/audit/index.js';
import { backupStore, verifyBackup } from '../../../src/backup/index.js';
import { resolveStoreAudit } from '../../../src/cli/audit-key.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { FaultFileLayer } from '../../../src/util/fault-file-layer.js';
import { useFileLayer } from '../../../src/util/file-layer.js';

/**
 * Power-cut harness. One scripted run of the store's operations (SCRIPT) goes
 * through the fault-injecting file layer, which cuts the power at its n-th
 * durable operation (every boundary of the run, then random ones) and leaves
 * the directory as a disk could hold it (unsynced data dropped or torn,
 * directory changes not fsynced undone). The store is then reopened with the
 * real code, in the same process, and checked against what the run had
 * acknowledged before the cut.
 *
 * Adding an operation is one line in SCRIPT: `op('label', (c) => ...)` for
 * anything whose acknowledged effect the checks already cover (the store
 * opens, every DEK unwraps, records, audit), or `upsert(...)` for writes.
 */

const DIM = 4;
/**
 * The store's segment-group limit in the run: small, so that a few flushes
 * start a background compaction (compaction.ts) inside the script.
 */
const MAX_SEGMENTS = 2;
/** The step whose flush starts the background compaction. */
export const BACKGROUND_COMPACTION = 'flush a (background compaction)';
/** Far enough ahead that every deletion window has passed. */
const LATER = new Date(Date.now() + 40 * 24 * 3600 * 1000);

interface Expected {
  vector: number[];
  tag: string;
}

/** What the run had acknowledged when the power went. */
export class Acknowledged {
  storeCreated = false;
  /** Collection name -> id -> the record it must hold. */
  readonly records = new Map<string, Map<string, Expected>>();
  /** The batch that was in flight at the cut (all or nothing). */
  inflight: { collection: string; ids: string[]; tag: string } | undefined;
  shredded = new Set<string>();
  /**
   * Collections whose tenant's deletion was being scheduled at the cut: the
   * schedule may have become durable without being acknowledged, and the
   * check reopens past the window, so the collection may be shredded there
   * (gone whole); if it is still there its records must be too.
   */
  mayShred = new Set<string>();
  backups = 0;
  /** The label of the last operation acknowledged. */
  last = 'nothing';
  /** Segment groups of a collection around a background compaction: before it started and once it was idle. */
  readonly compactions: { collection: string; before: number; after: number }[] = [];
}

export interface Ctx {
  store(): Store;
  open(create: boolean): Promise<void>;
  ack: Acknowledged;
  dir: string;
  keyDir: string;
  backupDir: string;
}

export interface Step {
  label: string;
  run(c: Ctx): Promise<void>;
}

const op = (label: string, run: (c: Ctx) => Promise<unknown>): Step => ({ label, run: async (c) => void (await run(c)) });

const vec = (seed: number): number[] => Array.from({ length: DIM }, (_, i) => ((seed * 7 + i * 3) % 97) / 8);

/** An upsert of `n` records `<collection>-<from+i>` tagged `tag`: acknowledged as a whole, or not at all. */
function upsert(collection: string, from: number, n: number, tag: string): Step {
  return {
    label: `upsert ${collection} ${from}..${from + n - 1} (${tag})`,
    async run(c) {
      const ids = Array.from({ length: n }, (_, i) => `${collection}-${from + i}`);
      c.ack.inflight = { collection, ids, tag };
      await c
        .store()
        .collection(collection)
        .upsert(ids.map((id, i) => ({ id, vector: vec(from + i + tag.length), metadata: { tag } })));
      const m = c.ack.records.get(collection) ?? new Map<string, Expected>();
      ids.forEach((id, i) => m.set(id, { vector: vec(from + i + tag.length), tag }));
      c.ack.records.set(collection, m);
      c.ack.inflight = undefined;
    },
  };
}

/**
 * The scripted run: every operation the store has today. Cuts land at each
 * durable-operation boundary inside these.
 */
export const SCRIPT: readonly Step[] = [
  op('create store', (c) => c.open(true)),
  op('create collections a, b', (c) =>
    c.store().createCollections([
      { name: 'a', dim: DIM },
      { name: 'b', dim: DIM },
    ]),
  ),
  upsert('a', 0, 6, 'first'),
  upsert('b', 0, 3, 'first'),
  op('flush a', (c) => c.store().collection('a').flush()),
  upsert('a', 3, 6, 'second'),
  op('flush a', (c) => c.store().collection('a').flush()),
  op('compact a', (c) => c.store().collection('a').compact()),
  upsert('a', 10, 4, 'third'),
  op('flush a', (c) => c.store().collection('a').flush()),
  upsert('a', 12, 4, 'fourth'),
  op(BACKGROUND_COMPACTION, async (c) => {
    // The third group puts a over MAX_SEGMENTS: the flush schedules the merge, which runs beside the caller; waited for
    // here so that its durable operations sit at fixed boundaries of the run.
    const col = c.store().collection('a');
    await col.flush();
    const before = col.stats().segments;
    await col.whenIdle();
    c.ack.compactions.push({ collection: 'a', before, after: col.stats().segments });
  }),
  op('rotate KEK', (c) => c.store().rotateKek()),
  upsert('b', 3, 3, 'after-rotation'),
  op('re-key b', (c) => c.store().rekey('b')),
  upsert('b', 0, 2, 'after-rekey'),
  op('flush', (c) => c.store().flush()),
  op('create tenant t', (c) => c.store().createTenant('t')),
  op('create collection t1 for t', (c) => c.store().createCollection('t1', { dim: DIM, tenant: 't' })),
  upsert('t1', 0, 3, 'tenant'),
  op('schedule deletion of t', async (c) => {
    c.ack.mayShred.add('t1');
    await c.store().scheduleTenantDeletion('t', { days: 7 });
  }),
  op('shred t', async (c) => {
    // While the shred runs, t1's records may go (that is what it does); once it returns, they must have.
    c.ack.records.delete('t1');
    await c.store().maintain({ now: LATER });
    c.ack.shredded.add('t1');
  }),
  op('backup', async (c) => {
    await backupStore(c.store(), { to: c.backupDir });
    c.ack.backups += 1;
  }),
  upsert('a', 20, 4, 'last'),
  op('close', (c) => c.store().close()),
];

export interface CutResult {
  cutAt: number;
  seed: number;
  /** The durable operation the power went at. */
  cutOp: string;
  /** The script step running then. */
  during: string;
  acknowledgedRecords: number;
  problems: string[];
}

export interface PowerCutReport {
  cuts: number;
  boundaries: number;
  everyBoundary: number;
  random: number;
  durableOps: number;
  acknowledgedRecords: number;
  lostAcknowledgedWrites: number;
  tornBatches: number;
  keysLost: number;
  unopenable: number;
  notWritable: number;
  auditBroken: number;
  backupsBroken: number;
  shredUndone: number;
  failures: { cutAt: number; seed: number; cutOp: string; during: string; problems: string[] }[];
  byStep: Record<string, number>;
  /** The background compaction inside the run: its segment groups before and after, its boundaries and the cuts that landed in it. */
  backgroundCompaction: { step: string; groupsBefore: number; groupsAfter: number; boundaries: number; cuts: number };
  operations: string[];
  durationMs: number;
}

/** One uncut run of the script: its durable operations, and which of them each step made. */
export interface ScriptTrace {
  ops: number;
  /** Each step's durable operations are numbers from..to (1-based, inclusive; from > to when it made none). */
  steps: { label: string; from: number; to: number }[];
  /** The label of every durable operation, in order. */
  labels: readonly string[];
  ack: Acknowledged;
  error: unknown;
}

/** Runs the script once with no cut, tracing every durable operation. */
export async function traceScript(root: string): Promise<ScriptTrace> {
  const dir = mkdtempSync(join(root, 'trace-'));
  const layer = new FaultFileLayer({ root: dir, trace: true });
  const steps: ScriptTrace['steps'] = [];
  const { ack, error } = await runScript(dir, layer, (label, from, to) => steps.push({ label, from, to }));
  rmSync(dir, { recursive: true, force: true });
  return { ops: layer.ops, steps, labels: [...layer.trace], ack, error };
}

async function runScript(
  base: string,
  layer: FaultFileLayer,
  onStep?: (label: string, from: number, to: number) => void,
): Promise<{ ack: Acknowledged; during: string; error: unknown }> {
  const ack = new Acknowledged();
  let store: Store | undefined;
  const c: Ctx = {
    ack,
    dir: join(base, 'data'),
    keyDir: join(base, 'keys'),
    backupDir: join(base, 'backup'),
    store: () => {
      if (store === undefined) throw new Error('no store open');
      return store;
    },
    async open(create) {
      store = await openStore({
        dir: c.dir,
        create,
        keys: { provider: 'local', keyDir: c.keyDir },
        stagingDir: join(base, '..', 'staging'),
        maintainOnOpen: false,
        clock: () => new Date(),
        maxSegments: MAX_SEGMENTS,
        // Retired files (merged groups, covered WAL files) are removed where they are retired, not by a timer
        // that could fire at any point of the run (or after it): the removals are boundaries of the run like the rest.
        retiredFileGraceMs: 0,
      });
      ack.storeCreated = true;
    },
  };
  const restore = useFileLayer(layer);
  let during = 'end';
  let error: unknown;
  try {
    for (const step of SCRIPT) {
      during = step.label;
      const from = layer.ops + 1;
      await step.run(c);
      onStep?.(step.label, from, layer.ops);
      ack.last = step.label;
    }
    during = 'end';
  } catch (err) {
    error = err;
  } finally {
    await layer.settle().catch(() => undefined);
    restore();
  }
  return { ack, during, error };
}

/** The pid of a process that has exited: a LOCK naming it is stale, as after a reboot. */
let deadPid: number | undefined;
function stalePid(): number {
  if (deadPid === undefined) {
    // pid_max bounds live pids; one beyond it is never alive.
    const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
    deadPid = max + 1;
  }
  return deadPid;
}

/** One power cut at durable operation `cutAt`, then the checks. */
export async function powerCut(root: string, cutAt: number, seed: number): Promise<CutResult> {
  const base = mkdtempSync(join(root, `cut${cutAt}-`));
  const layer = new FaultFileLayer({ root: base, cutAt, seed });
  const { ack, during, error } = await runScript(base, layer);
  const problems: string[] = [];
  if (!layer.cut && error !== undefined) problems.push(`the run failed without a power cut: ${describe(error)}`);
  layer.materialize();
  // After a reboot the writer is gone: its LOCK is stale.
  const lockPath = join(base, 'data', 'LOCK');
  if (existsSync(lockPath)) {
    try {
      const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number };
      lock.pid = stalePid();
      writeFileSync(lockPath, JSON.stringify(lock));
    } catch {
      // A LOCK that does not parse is stale already.
    }
  }
  try {
    await check(base, ack, problems);
  } catch (err) {
    problems.push(`check failed: ${describe(err)}`);
  }
  const records = [...ack.records.values()].reduce((s, m) => s + m.size, 0);
  if (problems.length === 0) rmSync(base, { recursive: true, force: true });
  return { cutAt, seed, cutOp: layer.cutOp ?? 'end', during, acknowledgedRecords: records, problems };
}

function describe(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return `${typeof e?.code === 'string' ? e.code : 'UNTYPED'} ${String(e?.message ?? err).slice(0, 300)}`;
}

/** Reopens with the real file layer and checks every promise the run had made. */
async function check(base: string, ack: Acknowledged, problems: string[]): Promise<void> {
  const dir = join(base, 'data');
  const keyDir = join(base, 'keys');
  const staging = join(base, '..', 'staging');
  if (!ack.storeCreated && !existsSync(join(dir, 'STORE'))) {
    // The creation never completed: creating it now must work.
    const s = await openStore({ dir, create: true, keys: { provider: 'local', keyDir }, stagingDir: staging }).catch((err: unknown) => {
      problems.push(`unopenable: a half-created store cannot be created again: ${describe(err)}`);
      return undefined;
    });
    await s?.close();
    return;
  }
  // The audit trail verifies up to its last durable entry and reaches the head the state recorded.
  // (No trail yet is fine while nothing recorded a head: the open checks that part.)
  if (existsSync(join(dir, 'STATE')) && existsSync(auditFilePath(dir))) {
    const audit = await resolveStoreAudit({ dir, keyDir }).catch((err: unknown) => {
      problems.push(`keys lost: the audit key does not unwrap: ${describe(err)}`);
      return undefined;
    });
    if (audit !== undefined) {
      try {
        const v = await verifyAuditTrail({
          file: auditFilePath(dir),
          macKey: audit.macKey,
          requireClosed: false,
          ...(audit.recordedHead === undefined ? {} : { expectedHead: audit.recordedHead }),
        });
        // A torn last line past the recorded head is the unsynced end of the trail, cut off on open.
        const tornTail = !v.ok && v.problem === 'truncated' && v.firstBadEntry > (audit.recordedHead?.seq ?? -1);
        if (!v.ok && !tornTail) problems.push(`audit broken: ${v.problem} at entry ${v.firstBadEntry}: ${v.detail}`);
      } finally {
        audit.macKey.fill(0);
      }
    }
  }
  let store: Store;
  try {
    store = await openStore({
      dir,
      create: !ack.storeCreated,
      keys: { provider: 'local', keyDir },
      stagingDir: staging,
      clock: () => LATER,
    });
  } catch (err) {
    problems.push(`unopenable: ${describe(err)}`);
    return;
  }
  try {
    const names = new Set(store.listCollections().map((c) => c.name));
    for (const [name, records] of ack.records) {
      if (!names.has(name)) {
        if (ack.mayShred.has(name)) continue;
        problems.push(`lost: collection ${name} (${records.size} acknowledged records) is gone`);
        continue;
      }
      const col = store.collection(name);
      for (const [id, want] of records) {
        const inflight = ack.inflight?.collection === name && ack.inflight.ids.includes(id);
        const got = col.get(id);
        const ok =
          got !== undefined &&
          (got.metadata as { tag?: string } | undefined)?.tag === want.tag &&
          [...got.vector].every((x, i) => x === want.vector[i]);
        const newer = inflight && got !== undefined && (got.metadata as { tag?: string } | undefined)?.tag === ack.inflight?.tag;
        if (!ok && !newer)
          problems.push(`lost: acknowledged record ${name}/${id} (${want.tag}) ${got === undefined ? 'missing' : 'changed'}`);
      }
    }
    if (ack.inflight !== undefined && names.has(ack.inflight.collection)) {
      const col = store.collection(ack.inflight.collection);
      const tag = ack.inflight.tag;
      const applied = ack.inflight.ids.filter((id) => (col.get(id)?.metadata as { tag?: string } | undefined)?.tag === tag).length;
      if (applied !== 0 && applied !== ack.inflight.ids.length)
        problems.push(`torn batch: ${applied} of ${ack.inflight.ids.length} records of the in-flight upsert applied`);
    }
    for (const name of ack.shredded) if (names.has(name)) problems.push(`shred undone: collection ${name} is back`);
    // Every DEK the keyring keeps unwraps.
    for (const info of store.listCollections()) {
      const id = (info as { id?: string }).id;
      if (id === undefined) continue;
      const keys = store.keys.collectionKeys(id);
      for (const d of keys.deks) {
        if (d.state === 'destroyed' || d.wraps.length === 0) continue;
        try {
          (await store.keys.leaseDek(id, d.version)).release();
        } catch (err) {
          if (d.version >= (keys.minDecryptVersion ?? 0))
            problems.push(`keys lost: DEK v${d.version} of ${info.name} does not unwrap: ${describe(err)}`);
        }
      }
    }
    // Writable: a write, a flush, a clean close and a reopen that sees it.
    const target = names.has('a') ? 'a' : undefined;
    if (target !== undefined) {
      await store.collection(target).upsert({ id: 'after-cut', vector: vec(1), metadata: { tag: 'after' } });
      await store.collection(target).flush();
    }
    await store.close();
    const again = await openStore({ dir, keys: { provider: 'local', keyDir }, stagingDir: staging, clock: () => LATER });
    try {
      if (target !== undefined && again.collection(target).get('after-cut') === undefined)
        problems.push('not writable: a write after the cut is gone after a clean close');
    } finally {
      await again.close();
    }
    // After a clean close the whole trail verifies, closed.
    const audit = await resolveStoreAudit({ dir, keyDir });
    try {
      const v = await verifyAuditTrail({
        file: auditFilePath(dir),
        macKey: audit.macKey,
        ...(audit.recordedHead === undefined ? {} : { expectedHead: audit.recordedHead }),
      });
      if (!v.ok) problems.push(`audit broken after a clean close: ${v.problem} at entry ${v.firstBadEntry}: ${v.detail}`);
    } finally {
      audit.macKey.fill(0);
    }
  } catch (err) {
    problems.push(
      `not writable: ${describe(err)} ${String((err as Error)?.stack ?? '')
        .split('\n')
        .slice(1, 4)
        .join(' <- ')}`,
    );
    await store.close().catch(() => undefined);
  }
  if (ack.backups > 0) {
    await verifyBackup(join(base, 'backup'), { withKeys: true, localKeyDir: keyDir }).catch((err: unknown) => {
      problems.push(`backup broken: an acknowledged backup does not verify: ${describe(err)}`);
    });
  }
}

/**
 * Cuts at every boundary of the scripted run (`everyBoundary`, true by
 * default), then at `random` more boundaries drawn from `seed`.
 */
export async function runPowerCuts(options: {
  root: string;
  seed: number;
  random: number;
  everyBoundary?: boolean;
  stride?: number;
  /** Steps cut at every one of their boundaries whatever the stride (the CI sample keeps the whole compaction). */
  focus?: readonly string[];
  log?: (line: string) => void;
}): Promise<PowerCutReport> {
  const started = Date.now();
  mkdirSync(join(options.root, 'staging'), { recursive: true });
  const traced = await traceScript(options.root);
  if (traced.error !== undefined) throw new Error(`the scripted run fails without a power cut: ${describe(traced.error)}`);
  const boundaries = traced.ops;
  const compaction = traced.steps.find((st) => st.label === BACKGROUND_COMPACTION);
  const groups = traced.ack.compactions[0];
  if (compaction === undefined || groups === undefined) throw new Error('the scripted run has no background compaction');
  const stride = options.stride ?? 1;
  const points: number[] = [];
  if (options.everyBoundary !== false) {
    const chosen = new Set<number>();
    for (let n = 1; n <= boundaries + 1; n += stride) chosen.add(n);
    for (const st of traced.steps) if (options.focus?.includes(st.label)) for (let n = st.from; n <= st.to; n++) chosen.add(n);
    points.push(...[...chosen].sort((x, y) => x - y));
  }
  const everyBoundary = points.length;
  let state = options.seed >>> 0;
  const next = (): number => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return state;
  };
  for (let i = 0; i < options.random; i++) points.push(1 + (next() % (boundaries + 1)));
  const report: PowerCutReport = {
    cuts: 0,
    boundaries,
    everyBoundary,
    random: options.random,
    durableOps: 0,
    acknowledgedRecords: 0,
    lostAcknowledgedWrites: 0,
    tornBatches: 0,
    keysLost: 0,
    unopenable: 0,
    notWritable: 0,
    auditBroken: 0,
    backupsBroken: 0,
    shredUndone: 0,
    failures: [],
    byStep: {},
    backgroundCompaction: {
      step: BACKGROUND_COMPACTION,
      groupsBefore: groups.before,
      groupsAfter: groups.after,
      boundaries: Math.max(0, compaction.to - compaction.from + 1),
      cuts: 0,
    },
    operations: SCRIPT.map((s) => s.label),
    durationMs: 0,
  };
  for (const [i, cutAt] of points.entries()) {
    const seed = (options.seed + i * 7919) >>> 0;
    const r = await powerCut(options.root, cutAt, seed);
    report.cuts += 1;
    report.durableOps += Math.min(cutAt, boundaries);
    report.acknowledgedRecords += r.acknowledgedRecords;
    report.byStep[r.during] = (report.byStep[r.during] ?? 0) + 1;
    if (cutAt >= compaction.from && cutAt <= compaction.to) report.backgroundCompaction.cuts += 1;
    const count = (prefix: string): number => r.problems.filter((p) => p.startsWith(prefix)).length;
    report.lostAcknowledgedWrites += count('lost');
    report.tornBatches += count('torn batch');
    report.keysLost += count('keys lost');
    report.unopenable += count('unopenable') > 0 ? 1 : 0;
    report.notWritable += count('not writable') > 0 ? 1 : 0;
    report.auditBroken += count('audit broken') > 0 ? 1 : 0;
    report.backupsBroken += count('backup broken') > 0 ? 1 : 0;
    report.shredUndone += count('shred undone');
    if (r.problems.length > 0) {
      report.failures.push({ cutAt, seed, cutOp: r.cutOp, during: r.during, problems: r.problems.slice(0, 5) });
      options.log?.(`cut ${cutAt} (seed ${seed}) at ${r.cutOp} during "${r.during}": ${r.problems.join('; ')}`);
    }
  }
  report.durationMs = Date.now() - started;
  return report;
}
