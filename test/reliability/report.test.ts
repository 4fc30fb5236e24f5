import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordSection } from './harness/report.js';

const dir = mkdtempSync(join(tmpdir(), 'vs-rel-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const read = (): { size: string; sections: Record<string, { size: string; killPoints?: number; cuts?: number }> } =>
  JSON.parse(readFileSync(join(dir, 'reliability.json'), 'utf8'));
const md = (): string => readFileSync(join(dir, 'reliability.md'), 'utf8');
const crash = (killPoints: number) => ({
  killPoints,
  survived: killPoints,
  notReached: 0,
  acknowledgedOps: 1,
  inflightAtKill: 0,
  inflightFoundApplied: 0,
  lostAcknowledgedWrites: 0,
  tornBatches: 0,
  wrongResults: 0,
  keysLost: 0,
  notWritable: 0,
  durationMs: 1,
  byMode: { point: { killed: 1, survived: 1 }, timer: { killed: 0, survived: 0 } },
  byPoint: {},
});

describe('reliability report: each campaign updates its own section', () => {
  it('a full power-cut run keeps the SIGKILL figures of a CI-sized run, and a later CI run does not replace the full figures', async () => {
    await recordSection('crash', crash(201), { full: false, seed: 1 }, dir);
    await recordSection('power-cut', { cuts: 1009, lostAcknowledgedWrites: 0 }, { full: true, seed: 2 }, dir);
    let f = read();
    expect(f.sections['crash']).toMatchObject({ size: 'ci', killPoints: 201 });
    expect(f.sections['power-cut']).toMatchObject({ size: 'full', cuts: 1009 });
    expect(f.size).toBe('mixed');
    expect(md()).toContain('## Crash safety (SIGKILL) (CI-sized run)');
    expect(md()).toContain('## Power loss (simulated power cuts) (full run)');
    expect(md()).toMatch(/\| 201 \| 201 \|/);

    // npm test afterwards: its power-cut sample is not written over the full campaign; its crash figures replace the CI ones.
    expect(await recordSection('power-cut', { cuts: 40, lostAcknowledgedWrites: 0 }, { full: false, seed: 3 }, dir)).toBe(false);
    await recordSection('crash', crash(199), { full: false, seed: 3 }, dir);
    f = read();
    expect(f.sections['power-cut']).toMatchObject({ size: 'full', cuts: 1009 });
    expect(f.sections['crash']).toMatchObject({ size: 'ci', killPoints: 199 });

    // A full crash campaign replaces the CI one; with every section full the report says so.
    await recordSection('crash', crash(1000), { full: true, seed: 4 }, dir);
    f = read();
    expect(f.sections['crash']).toMatchObject({ size: 'full', killPoints: 1000 });
    expect(f.size).toBe('full');
    expect(md()).toContain('## Crash safety (SIGKILL) (full run)');
  });
});
