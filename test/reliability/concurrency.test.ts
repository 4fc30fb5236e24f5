import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  runKmsRace,
  runLockRace,
  runSearchRace,
  type KmsRaceReport,
  type LockRaceReport,
  type SearchRaceReport,
} from './harness/concurrency.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-conc-'));
const s = sizes();
const parts: { search?: SearchRaceReport; lock?: LockRaceReport; kms?: KmsRaceReport } = {};

afterAll(async () => {
  // One report section for the three parts (each records what it ran).
  await recordSection(
    'concurrency',
    {
      ...(parts.search ? { search: { ...parts.search, failures: parts.search.failures.length } } : {}),
      ...(parts.lock ? { lock: { ...parts.lock, failures: parts.lock.failures.length } } : {}),
      ...(parts.kms ? { kms: { ...parts.kms, failures: parts.kms.failures.length } } : {}),
      wrongResults: parts.search?.wrongResults ?? 0,
    },
    s,
  );
  rmSync(root, { recursive: true, force: true });
});

describe('concurrency', () => {
  it('searches during flushes and compactions always equal brute force over the acknowledged records', { timeout: 300_000 }, async () => {
    const report = await runSearchRace({ dir: join(root, 'search'), keyDir: join(root, 'keys'), seed: s.seed, rounds: s.full ? 120 : 30 });
    parts.search = report;
    console.log(
      `concurrent search (seed ${s.seed}): ${report.searches} searches (${report.duringMaintenance} during ` +
        `${report.flushes} flushes and ${report.compactions} compactions), ` +
        `${report.acknowledgedOps} acknowledged writes, ${report.wrongResults} wrong`,
    );
    expect(report.failures).toEqual([]);
    expect(report.wrongResults).toBe(0);
    expect(report.duringMaintenance).toBeGreaterThan(0);
  });

  it('a second writer process is refused with VS_STORE_LOCKED while the first writes', { timeout: 300_000 }, async () => {
    const report = await runLockRace({ dir: join(root, 'lock'), keyDir: join(root, 'keys'), seed: s.seed, attempts: s.full ? 20 : 6 });
    parts.lock = report;
    console.log(
      `second writer (seed ${s.seed}): ${report.attempts} attempts, ` +
        `${report.refusedLocked} refused VS_STORE_LOCKED while the writer acknowledged ` +
        `${report.writerOpsWhileRefused} ops; opened after it was gone: ${report.openedAfterWriterGone}`,
    );
    expect(report.failures).toEqual([]);
    expect(report.refusedLocked).toBe(report.attempts);
    expect(report.writerOpsWhileRefused).toBeGreaterThan(0);
    expect(report.openedAfterWriterGone).toBe(true);
  });

  it('the key service under concurrent SDK clients during rotations and deletion scheduling: ' +
    'only state exceptions, every ciphertext still decrypts and re-encrypts', { timeout: 300_000 }, async () => {
    const report = await runKmsRace({ dataDir: join(root, 'kms'), seed: s.seed, clients: 4, rounds: s.full ? 25 : 6 });
    parts.kms = report;
    console.log(
      `key service under ${report.clients} SDK clients (seed ${s.seed}): ${report.requests} requests, ` +
        `${report.rotations} rotations, ${report.deletionCycles} schedule/cancel cycles, ` +
        `expected state errors ${JSON.stringify(report.expectedStateErrors)}, ` +
        `${report.unexpectedErrors} unexpected; ${report.ciphertexts} ciphertexts, ` +
        `${report.reEncrypted} decrypted and re-encrypted, ${report.lostCiphertexts} lost`,
    );
    expect(report.failures).toEqual([]);
    expect(report.unexpectedErrors).toBe(0);
    expect(report.lostCiphertexts).toBe(0);
    expect(report.rotations).toBeGreaterThan(0);
  });
});
