import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { AuditTrail, verifyAuditTrail, type AuditHead } from '../../src/audit/index.js';
import { tempDir } from '../helpers/tmp.js';
import { lines } from './fixture.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Transpiles src/errors.ts and src/audit/*.ts into `out` so a plain `node` child can run them. */
function buildChildModules(out: string): void {
  const util = [
    'src/util/append-sink.ts',
    'src/util/crash.ts',
    'src/util/durable.ts',
    'src/util/file-layer.ts',
    'src/util/redacted-fields.ts',
  ];
  const sources = [
    'src/errors.ts',
    ...util,
    ...readdirSync(join(root, 'src/audit'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/audit/${f}`),
  ];
  for (const source of sources) {
    const { outputText } = ts.transpileModule(readFileSync(join(root, source), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    const target = join(out, source.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
}

const CHILD = `
import { AuditTrail } from './src/audit/index.js';
const [file, keyHex, count] = process.argv.slice(2);
const trail = await AuditTrail.open({ file, macKey: Buffer.from(keyHex, 'hex') });
let head;
for (let i = 0; i < Number(count); i++) head = trail.record({ action: 'unwrap', outcome: 'ok', collectionId: 'c' + i, dekVersion: 1 });
process.stdout.write(JSON.stringify(head));
// A power cut: no close, no flush, no exit handlers.
process.kill(process.pid, 'SIGKILL');
`;

describe('audit trail durability', () => {
  const dir = tempDir('vs-audit-crash-');

  it('a process killed right after record() leaves every acknowledged entry, and the next open continues', async () => {
    buildChildModules(dir);
    writeFileSync(join(dir, 'child.mjs'), CHILD);
    const file = join(dir, 'data', 'audit.log');
    const key = randomBytes(32);
    const child = spawnSync(process.execPath, [join(dir, 'child.mjs'), file, key.toString('hex'), '150'], { encoding: 'utf8' });
    expect(child.signal).toBe('SIGKILL');
    const acknowledged = JSON.parse(child.stdout) as AuditHead;
    expect(acknowledged.seq).toBe(150);

    expect(await verifyAuditTrail({ file, macKey: key, expectedHead: acknowledged })).toMatchObject({
      ok: true,
      entries: 151,
      closed: false,
    });
    // Without the head, the missing close checkpoint shows the trail did not end cleanly.
    expect(await verifyAuditTrail({ file, macKey: key })).toMatchObject({ ok: false, problem: 'truncated', firstBadEntry: 151 });

    const trail = await AuditTrail.open({ file, macKey: key });
    const head = await trail.close();
    expect(JSON.parse(lines(file)[151]!)).toMatchObject({ action: 'trail-open', details: { previousSeq: 150, previousClosed: false } });
    expect(await verifyAuditTrail({ file, macKey: key, expectedHead: head })).toMatchObject({ ok: true, entries: 153, closed: true });
  });
});
