import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKGROUND_COMPACTION, runPowerCuts } from './harness/power-cut.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-powercut-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('power loss: simulated power cuts through the fault-injecting file layer', () => {
  const s = sizes();
  it('loses no acknowledged write, tears no batch, loses no key, every store opens and stays writable', {
    timeout: s.full ? 3_600_000 : 600_000,
  }, async () => {
    const report = await runPowerCuts({
      root,
      seed: s.seed,
      // Full: every boundary of the scripted run, then random ones up to the target. CI: every `stride`-th boundary and a few random ones.
      stride: s.full ? 1 : s.powerCutStride,
      random: s.powerCutsRandom,
      // Every boundary of the background compaction, whatever the stride: a merge beside the writer is where a cut is least obvious.
      focus: [BACKGROUND_COMPACTION],
      ...(process.env['VECTORSEAL_RELIABILITY_VERBOSE'] ? { log: (l: string) => console.log(l) } : {}),
    });
    await recordSection('power-cut', report, s);
    console.log(
      `power cuts (seed ${s.seed}): ${report.cuts} cuts (${report.everyBoundary} at boundaries of ` +
        `${report.boundaries}, ${report.random} random); ` +
        `lost ${report.lostAcknowledgedWrites}, torn ${report.tornBatches}, keys lost ${report.keysLost}, ` +
        `unopenable ${report.unopenable}, ` +
        `not writable ${report.notWritable}, audit broken ${report.auditBroken}, ` +
        `backups broken ${report.backupsBroken} (${report.durationMs} ms)`,
    );
    const bc = report.backgroundCompaction;
    console.log(
      `background compaction: ${bc.groupsBefore} -> ${bc.groupsAfter} groups, ${bc.cuts} cuts at its ${bc.boundaries} boundaries`,
    );
    expect(bc.groupsAfter).toBeLessThan(bc.groupsBefore);
    expect(bc.cuts).toBeGreaterThanOrEqual(bc.boundaries);
    expect(report.failures).toEqual([]);
    expect(report.lostAcknowledgedWrites).toBe(0);
    expect(report.unopenable).toBe(0);
  });
});
