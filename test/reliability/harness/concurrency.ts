import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  CancelKeyDeletionCommand,
  CreateKeyCommand,
  DecryptCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListKeyRotationsCommand,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms';
import { StoreLockedError, openStore, type Collection } from '../../../src/index.js';
import { startKeyService, type RunningKeyService } from '../../../src/kms/index.js';
import { DIST_DIR, WRITER_SCRIPT } from './paths.js';
import { Rng } from './rng.js';

// ---- searches during flush and compaction ------------------------------------

export interface SearchRaceReport {
  searches: number;
  /** Searches that ran while a flush or compaction was in progress. */
  duringMaintenance: number;
  flushes: number;
  compactions: number;
  acknowledgedOps: number;
  wrongResults: number;
  failures: string[];
}

const DIM = 8;

/**
 * One process, one collection: writes are acknowledged into a model, and
 * between the steps of running flushes and compactions, searches are checked
 * against brute force over the model: the same distances, every id live and
 * holding its acknowledged vector. ef above the record count makes HNSW
 * exhaustive, so any difference is the store's, not the approximation's.
 */
export async function runSearchRace(options: { dir: string; keyDir: string; seed: number; rounds: number }): Promise<SearchRaceReport> {
  const r = new Rng(options.seed);
  const report: SearchRaceReport = {
    searches: 0,
    duringMaintenance: 0,
    flushes: 0,
    compactions: 0,
    acknowledgedOps: 0,
    wrongResults: 0,
    failures: [],
  };
  const store = await openStore({
    dir: options.dir,
    create: true,
    keys: { provider: 'local', keyDir: options.keyDir },
    durability: 'none',
    maxSegments: 4,
  });
  const model = new Map<string, number[]>();
  const vec = (): number[] => Array.from({ length: DIM }, () => (r.int(2001) - 1000) / 8);
  const POOL = 400;
  try {
    const col = await store.createCollection('race', { dim: DIM });
    const upsert = async (n: number): Promise<void> => {
      const batch = new Map<string, number[]>();
      for (let i = 0; i < n; i++) batch.set(`r${r.int(POOL)}`, vec());
      await col.upsert([...batch].map(([id, vector]) => ({ id, vector })));
      for (const [id, v] of batch) model.set(id, v);
      report.acknowledgedOps++;
    };
    const remove = async (n: number): Promise<void> => {
      const ids = Array.from({ length: n }, () => `r${r.int(POOL)}`);
      await col.delete(ids);
      for (const id of ids) model.delete(id);
      report.acknowledgedOps++;
    };
    const check = (during: boolean): void => {
      report.searches++;
      if (during) report.duringMaintenance++;
      const q = vec();
      const k = 1 + r.int(25);
      const problem = compareWithBruteForce(col, model, q, k);
      if (problem !== undefined) {
        report.wrongResults++;
        if (report.failures.length < 20) report.failures.push(problem);
      }
    };
    await upsert(150);
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < 4; i++) await (r.int(4) === 0 ? remove(1 + r.int(6)) : upsert(1 + r.int(30)));
      const compaction = r.int(3) === 0;
      let done = false;
      const work = (compaction ? col.compact().then(() => undefined) : col.flush()).finally(() => {
        done = true;
      });
      // Searches interleave with the maintenance's own awaits; writes acknowledged meanwhile join the model.
      for (let steps = 0; !done && steps < 10_000; steps++) {
        check(true);
        if (r.int(5) === 0) await (r.int(3) === 0 ? remove(1 + r.int(4)) : upsert(1 + r.int(10)));
        await new Promise((res) => setImmediate(res));
      }
      await work;
      if (compaction) report.compactions++;
      else report.flushes++;
      check(false);
    }
  } finally {
    await store.close();
  }
  return report;
}

function l2(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += ((a[i] as number) - (b[i] as number)) ** 2;
  return s;
}

/** Undefined when the search equals brute force over the model (ties may come in either order). */
function compareWithBruteForce(col: Collection, model: Map<string, number[]>, q: number[], k: number): string | undefined {
  const got = col.search(q, k, { ef: 2_000 });
  const exact = [...model]
    .map(([id, v]) => ({ id, d: l2(v, q) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, k);
  if (got.length !== exact.length) return `search returned ${got.length} results, brute force ${exact.length}`;
  const seen = new Set<string>();
  for (const [i, h] of got.entries()) {
    if (seen.has(h.id)) return `result ${h.id} twice`;
    seen.add(h.id);
    const v = model.get(h.id);
    if (v === undefined) return `result ${h.id} is deleted or never acknowledged`;
    const d = l2(v, q);
    if (Math.abs(d - h.score) > 1e-3 * Math.max(1, d)) return `result ${h.id} has distance ${h.score}, its acknowledged vector ${d}`;
    if (Math.abs(h.score - (exact[i] as { d: number }).d) > 1e-3 * Math.max(1, h.score))
      return `rank ${i}: distance ${h.score}, brute force ${(exact[i] as { d: number }).d}`;
  }
  return undefined;
}

// ---- a second writer process --------------------------------------------------

export interface LockRaceReport {
  attempts: number;
  refusedLocked: number;
  writerOpsWhileRefused: number;
  openedAfterWriterGone: boolean;
  failures: string[];
}

function openInChild(dir: string, keyDir: string): Promise<string> {
  const code = `import { openStore } from ${JSON.stringify(join(DIST_DIR(), 'index.js'))};
try {
  const s = await openStore({ dir: process.argv[1], keys: { provider: 'local', keyDir: process.argv[2] } });
  await s.close();
  console.log('opened');
} catch (e) { console.log(e && e.code ? e.code : 'UNTYPED'); }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, dir, keyDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(out.trim()));
  });
}

/**
 * A writer child (the crash harness's) writes continuously; other processes
 * (children, and this one) try to open the store meanwhile and must be refused
 * with VS_STORE_LOCKED. Once the writer is gone the store opens.
 */
export async function runLockRace(options: { dir: string; keyDir: string; seed: number; attempts: number }): Promise<LockRaceReport> {
  const report: LockRaceReport = { attempts: 0, refusedLocked: 0, writerOpsWhileRefused: 0, openedAfterWriterGone: false, failures: [] };
  const writer = spawn(process.execPath, [WRITER_SCRIPT(), options.dir, options.keyDir, String(options.seed), '100000'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let exited = false;
  writer.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const gone = new Promise<void>((res) =>
    writer.on('exit', () => {
      exited = true;
      res();
    }),
  );
  try {
    for (let i = 0; i < 600 && !out.includes('ready\n') && !exited; i++) await new Promise((res) => setTimeout(res, 100));
    if (!out.includes('ready\n')) throw new Error('the writer never became ready');
    const acked = (): number => (out.match(/^a \d+$/gm) ?? []).length;
    const before = acked();
    for (let i = 0; i < options.attempts; i++) {
      report.attempts++;
      // Alternate another process and this one.
      const code =
        i % 2 === 0
          ? await openInChild(options.dir, options.keyDir)
          : await openStore({ dir: options.dir, keys: { provider: 'local', keyDir: options.keyDir } }).then(
              async (s) => {
                await s.close();
                return 'opened';
              },
              (e: unknown) => (e instanceof StoreLockedError ? e.code : `other: ${(e as Error).name}`),
            );
      if (code === 'VS_STORE_LOCKED') report.refusedLocked++;
      else report.failures.push(`attempt ${i}: ${code}`);
      if (exited) {
        report.failures.push('the writer exited before the attempts ended');
        break;
      }
    }
    report.writerOpsWhileRefused = acked() - before;
  } finally {
    writer.kill('SIGKILL');
    await gone;
  }
  // The lock is the writer's: with the process gone, the next opener gets the store.
  const after = await openInChild(options.dir, options.keyDir);
  report.openedAfterWriterGone = after === 'opened';
  if (!report.openedAfterWriterGone) report.failures.push(`the store did not open after the writer was killed: ${after}`);
  return report;
}

// ---- the key service under concurrent SDK clients -------------------------------

export interface KmsRaceReport {
  clients: number;
  requests: number;
  /** Expected refusals while the key was pending deletion or disabled after a cancel. */
  expectedStateErrors: Record<string, number>;
  unexpectedErrors: number;
  rotations: number;
  deletionCycles: number;
  ciphertexts: number;
  /** Ciphertexts (from every backing-key version) that failed to decrypt or decrypted wrong at the end. */
  lostCiphertexts: number;
  reEncrypted: number;
  failures: string[];
}

const EXPECTED_STATE_ERRORS = new Set(['KMSInvalidStateException', 'DisabledException']);

/**
 * Several official-SDK clients encrypt, decrypt, generate data keys and
 * re-encrypt against one key while others rotate it on demand and schedule
 * and cancel its deletion. Only the documented state exceptions may come back;
 * at the end every ciphertext made during the run (under every backing key)
 * decrypts and re-encrypts across the rotations.
 */
export async function runKmsRace(options: { dataDir: string; seed: number; clients: number; rounds: number }): Promise<KmsRaceReport> {
  const ADMIN = { accessKeyId: 'AKIACONCURRENT01', secretAccessKey: 'concurrency-admin-secret-0123456' };
  const service: RunningKeyService = await startKeyService({
    port: 0,
    host: '127.0.0.1',
    dataDir: options.dataDir,
    config: {
      region: 'us-east-1',
      accountId: '111122223333',
      principals: [{ name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] }],
    },
  });
  const clients = Array.from(
    { length: options.clients },
    () => new KMSClient({ endpoint: service.url, region: 'us-east-1', credentials: ADMIN, maxAttempts: 1 }),
  );
  const report: KmsRaceReport = {
    clients: options.clients,
    requests: 0,
    expectedStateErrors: {},
    unexpectedErrors: 0,
    rotations: 0,
    deletionCycles: 0,
    ciphertexts: 0,
    lostCiphertexts: 0,
    reEncrypted: 0,
    failures: [],
  };
  const r = new Rng(options.seed);
  const sealed: { blob: Uint8Array; plaintext: Buffer; context: Record<string, string> }[] = [];
  /** Runs one request; an expected state refusal is counted, anything else is a failure. */
  const call = async <T>(what: string, p: () => Promise<T>): Promise<T | undefined> => {
    report.requests++;
    try {
      return await p();
    } catch (err) {
      const name = (err as Error).name;
      if (EXPECTED_STATE_ERRORS.has(name)) {
        report.expectedStateErrors[name] = (report.expectedStateErrors[name] ?? 0) + 1;
      } else {
        report.unexpectedErrors++;
        if (report.failures.length < 20) report.failures.push(`${what}: ${name}: ${(err as Error).message}`);
      }
      return undefined;
    }
  };
  try {
    const admin = clients[0] as KMSClient;
    const keyId = (await admin.send(new CreateKeyCommand({ Description: 'concurrency' }))).KeyMetadata!.KeyId!;
    const other = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    let stop = false;
    const worker = async (c: KMSClient, w: number): Promise<void> => {
      for (let i = 0; !stop && i < 100_000; i++) {
        const context = { 'vectorseal:collection': `w${w}`, n: String(i) };
        const kind = r.int(4);
        if (kind === 0 || sealed.length === 0) {
          const plaintext = Buffer.from(`worker ${w} op ${i}`);
          const res = await call('Encrypt', () =>
            c.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context })),
          );
          if (res) sealed.push({ blob: res.CiphertextBlob!, plaintext, context });
        } else if (kind === 1) {
          const res = await call('GenerateDataKey', () =>
            c.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context })),
          );
          if (res) sealed.push({ blob: res.CiphertextBlob!, plaintext: Buffer.from(res.Plaintext!), context });
        } else if (kind === 2) {
          const s = sealed[r.int(sealed.length)]!;
          const res = await call('Decrypt', () => c.send(new DecryptCommand({ CiphertextBlob: s.blob, EncryptionContext: s.context })));
          if (res && !Buffer.from(res.Plaintext!).equals(s.plaintext)) {
            report.unexpectedErrors++;
            report.failures.push('Decrypt returned other bytes');
          }
        } else {
          const s = sealed[r.int(sealed.length)]!;
          const res = await call('ReEncrypt', () =>
            c.send(
              new ReEncryptCommand({
                CiphertextBlob: s.blob,
                SourceEncryptionContext: s.context,
                DestinationKeyId: keyId,
                DestinationEncryptionContext: s.context,
              }),
            ),
          );
          if (res) sealed.push({ blob: res.CiphertextBlob!, plaintext: s.plaintext, context: s.context });
        }
      }
    };
    const workers = clients.map((c, w) => worker(c, w));
    const pause = (): Promise<void> => new Promise((res) => setTimeout(res, 20 + r.int(40)));
    // Two controllers race each step; the loser of a schedule or cancel gets the state exception.
    const both = async (what: string, make: (c: KMSClient) => Promise<unknown>): Promise<number> => {
      const results = await Promise.all(clients.slice(0, 2).map((c) => call(what, () => make(c))));
      return results.filter((x) => x !== undefined).length;
    };
    for (let round = 0; round < options.rounds; round++) {
      report.rotations += await both('RotateKeyOnDemand', (c) => c.send(new RotateKeyOnDemandCommand({ KeyId: keyId })));
      await pause();
      const scheduled = await both('ScheduleKeyDeletion', (c) =>
        c.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 })),
      );
      if (scheduled !== 1) report.failures.push(`round ${round}: ${scheduled} ScheduleKeyDeletion calls succeeded, expected exactly 1`);
      await pause();
      const cancelled = await both('CancelKeyDeletion', (c) => c.send(new CancelKeyDeletionCommand({ KeyId: keyId })));
      if (cancelled !== 1) report.failures.push(`round ${round}: ${cancelled} CancelKeyDeletion calls succeeded, expected exactly 1`);
      await pause();
      // A cancelled key comes back disabled; enabling twice is harmless.
      await both('EnableKey', (c) => c.send(new EnableKeyCommand({ KeyId: keyId })));
      report.deletionCycles++;
      await pause();
    }
    stop = true;
    await Promise.all(workers);
    const rotations = await admin.send(new ListKeyRotationsCommand({ KeyId: keyId, Limit: 1000 }));
    if ((rotations.Rotations ?? []).length !== report.rotations)
      report.failures.push(`ListKeyRotations lists ${(rotations.Rotations ?? []).length} rotations, ${report.rotations} succeeded`);
    // Every ciphertext, under whichever backing key made it, decrypts and moves to another key and back.
    report.ciphertexts = sealed.length;
    for (const s of sealed) {
      try {
        const d = await admin.send(new DecryptCommand({ CiphertextBlob: s.blob, EncryptionContext: s.context }));
        const moved = await admin.send(
          new ReEncryptCommand({
            CiphertextBlob: s.blob,
            SourceEncryptionContext: s.context,
            DestinationKeyId: other,
            DestinationEncryptionContext: s.context,
          }),
        );
        const back = await admin.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob!, EncryptionContext: s.context }));
        if (!Buffer.from(d.Plaintext!).equals(s.plaintext) || !Buffer.from(back.Plaintext!).equals(s.plaintext))
          throw new Error('other bytes');
        report.reEncrypted++;
      } catch (err) {
        report.lostCiphertexts++;
        if (report.failures.length < 20) report.failures.push(`a ciphertext no longer decrypts: ${(err as Error).name}`);
      }
    }
  } finally {
    for (const c of clients) c.destroy();
    await service.close();
  }
  return report;
}
