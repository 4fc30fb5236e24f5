import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCrashCampaign } from './harness/crash-campaign.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('crash safety: writers killed with SIGKILL at random points', () => {
  const s = sizes();
  it('loses no acknowledged write, tears no batch, loses no key, stays writable', { timeout: 120_000 + s.killPoints * 6_000 }, async () => {
    const report = await runCrashCampaign({
      killPoints: s.killPoints,
      lanes: s.lanes,
      seed: s.seed,
      root,
      ...(process.env['VECTORSEAL_RELIABILITY_VERBOSE'] ? { log: (l: string) => console.log(l) } : {}),
    });
    await recordSection('crash', report, s);
    console.log(
      `crash safety (seed ${report.seed}): ${report.killPoints} kill points (${report.byMode.point.killed} ` +
        `at named points, ${report.byMode.timer.killed} timed), ` +
        `${report.survived} survived, ${report.notReached} writers ran out first; ${report.acknowledgedOps} acknowledged ops; ` +
        `lost ${report.lostAcknowledgedWrites}, torn ${report.tornBatches}, wrong ${report.wrongResults}, ` +
        `keys lost ${report.keysLost}, not writable ${report.notWritable} (${report.durationMs} ms)`,
    );
    expect(report.failures).toEqual([]);
    expect(report.killPoints).toBeGreaterThanOrEqual(s.killPoints);
    expect(report.survived).toBe(report.killPoints);
    expect(report.lostAcknowledgedWrites).toBe(0);
    expect(report.wrongResults).toBe(0);
  });
});
