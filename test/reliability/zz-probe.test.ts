import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { runPowerCuts } from './harness/power-cut.js';
it('probe', { timeout: 900000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'i19-probe-'));
  const r = await runPowerCuts({ root, seed: Number(process.env.SEED ?? 1), random: 0, stride: Number(process.env.STRIDE ?? 4), log: (l) => console.log(l) });
  console.log(JSON.stringify({ ...r, failures: r.failures.length }));
});
