import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerAuditCommands } from '../../src/cli/commands/audit.js';
import { formatAuditHead } from '../../src/audit/index.js';
import { runCommands } from '../helpers/cli-in-process.js';
import { tempDir } from '../helpers/tmp.js';
import { tamperedCopy, writeTrail } from './fixture.js';

/** The audit commands with a key resolver that records the directories asked for and answers `key`. */
async function run(args: string[], key: Uint8Array): Promise<{ stdout: string; exitCode: number; dirs: string[] }> {
  const dirs: string[] = [];
  const resolveKey = async ({ dir }: { dir: string }) => {
    dirs.push(dir);
    return Uint8Array.from(key);
  };
  return { ...(await runCommands((program) => registerAuditCommands(program, resolveKey), args)), dirs };
}

describe('vectorseal audit', () => {
  const dir = tempDir('vs-audit-cli-');
  afterEach(() => {
    process.exitCode = 0;
  });

  it('verify exits 0 for an intact trail (default file in --dir) and prints its head', async () => {
    const { key, head } = await writeTrail(dir, 20);
    const { stdout: out, exitCode, dirs } = await run(['audit', 'verify', '--dir', dir], key);
    expect(exitCode).toBe(0);
    expect(dirs).toEqual([dir]);
    expect(out).toMatch(/intact, 20 entries, closed/);
    expect(out).toContain(formatAuditHead(head));
    const again = await run(['audit', 'verify', '--dir', dir, '--head', formatAuditHead(head), '--json'], key);
    expect(again.exitCode).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, entries: 20, head });
  });

  it('verify exits 2 for a tampered trail and names the first bad entry', async () => {
    const { file, key } = await writeTrail(dir, 20);
    const copy = tamperedCopy(file, 'cli-del', (ls) => ls.filter((_, i) => i !== 7));
    const text = await run(['audit', 'verify', '--file', copy], key);
    expect(text.exitCode).toBe(2);
    expect(text.stdout).toMatch(/TAMPERED \(deleted\)/);
    expect(text.stdout).toMatch(/first bad entry: index 7 \(line 8, expected seq 7\)/);
    const json = await run(['audit', 'verify', '--file', copy, '--json'], key);
    expect(json.exitCode).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problem: 'deleted', firstBadEntry: 7, file: copy });
  });

  it('verify --allow-open accepts a trail without its close checkpoint', async () => {
    const { file, key } = await writeTrail(dir, 20);
    const open = tamperedCopy(file, 'cli-open', (ls) => ls.slice(0, 19));
    expect((await run(['audit', 'verify', '--file', open], key)).exitCode).toBe(2);
    expect((await run(['audit', 'verify', '--file', open, '--allow-open'], key)).exitCode).toBe(0);
  });

  it('show prints entries, the last N with --tail, as JSON lines with --json', async () => {
    const { file, key } = await writeTrail(dir, 20);
    copyFileSync(file, join(dir, 'copy.log'));
    const all = await run(['audit', 'show', '--dir', dir], key);
    expect(all.stdout.trim().split('\n')).toHaveLength(20);
    expect(all.stdout).toMatch(/trail-open/);
    const tail = await run(['audit', 'show', '--file', join(dir, 'copy.log'), '--tail', '3', '--json'], key);
    const entries = tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number });
    expect(entries.map((e) => e.seq)).toEqual([17, 18, 19]);
    expect(all.dirs).toEqual([]);
  });
});
