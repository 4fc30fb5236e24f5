import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runHostileApi } from './harness/hostile-api.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-hostile-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('hostile input on the public API (fast-check)', () => {
  it('throws only typed errors and leaves the store undamaged', { timeout: 300_000 }, async () => {
    const s = sizes();
    const report = await runHostileApi({ dir: join(root, 'data'), keyDir: join(root, 'keys'), runs: s.hostileRuns * 3, seed: s.seed });
    await recordSection('hostile-api', report, s);
    console.log(
      `hostile API input (seed ${s.seed}): ${report.tried} calls, ` +
        `${report.rejected} typed rejections ${JSON.stringify(report.codes)}, ${report.accepted} accepted, ` +
        `${report.untyped} untyped, ${report.damaged} damaged`,
    );
    expect(report.failures).toEqual([]);
    expect(report.untyped).toBe(0);
    expect(report.damaged).toBe(0);
  });
});
