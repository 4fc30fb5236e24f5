import { describe, expect, it } from 'vitest';
import { runHostileKms } from './harness/hostile-kms.js';
import { recordSection } from './harness/report.js';
import { sizes } from './harness/sizes.js';

describe('hostile input on the key service (SigV4-signed, hand-picked and fast-check)', () => {
  it('answers every malformed request with a 4xx {"__type","message"}, stays up, and damages no key (also after a restart)', {
    timeout: 600_000,
  }, async () => {
    const s = sizes();
    const report = await runHostileKms({ runs: s.hostileRuns * 2, seed: s.seed });
    await recordSection('hostile-kms', report, s);
    console.log(
      `hostile key-service input (seed ${s.seed}): ${report.tried} requests (${report.handPicked} ` +
        `hand-picked, ${report.generated} generated), ` +
        `${report.rejected} 4xx ${JSON.stringify(report.byType)}, ${report.accepted} accepted, ` +
        `${report.untyped} untyped, ${report.damaged} damaged, ${report.livenessChecks} liveness checks`,
    );
    expect(report.failures).toEqual([]);
    expect(report.rejected).toBe(report.tried);
    expect(report.damaged).toBe(0);
  });
});
