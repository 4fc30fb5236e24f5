import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runHostileCli } from './harness/hostile-cli.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('hostile input on the CLI', () => {
  it('exits non-zero with a one-line error and no stack trace; the store answers the same afterwards', { timeout: 600_000 }, async () => {
    const s = sizes();
    // Each case spawns the CLI: a tenth of the API's runs keeps the CI run short.
    const report = await runHostileCli({ root, runs: Math.max(10, Math.floor(s.hostileRuns / 10)), seed: s.seed });
    await recordSection('hostile-cli', report, s);
    console.log(
      `hostile CLI input (seed ${s.seed}): ${report.tried} invocations, ` +
        `${report.rejected} clean rejections, ${report.accepted} accepted, ${report.untyped} untyped`,
    );
    expect(report.failures).toEqual([]);
    expect(report.untyped).toBe(0);
  });
});
