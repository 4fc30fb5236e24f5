import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';
import { runTamperMatrix } from './harness/tamper.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-tamper-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('tamper matrix: every file kind, every kind of damage', () => {
  it('gives a typed error naming the file, or exactly the expected data where the change is harmless by design', {
    timeout: 600_000,
  }, async () => {
    const s = sizes();
    const report = await runTamperMatrix({
      root,
      seed: s.seed,
      bitFlipsPerFile: s.bitFlipsPerFile,
      ...(process.env['VECTORSEAL_RELIABILITY_VERBOSE'] ? { log: (l: string) => console.log(l) } : {}),
    });
    await recordSection('tamper', report, s);
    console.log(
      `tamper matrix (seed ${s.seed}): ${report.cases} cases, ${report.detected} detected, ` +
        `${report.harmless} harmless by design, ${report.limits} documented limits, ` +
        `${report.wrongResults} wrong results, ${report.untyped} untyped, ${report.undetected} undetected`,
    );
    expect(report.failures).toEqual([]);
    expect(report.wrongResults).toBe(0);
  });
});
