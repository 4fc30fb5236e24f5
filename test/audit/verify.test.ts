import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { CorruptDataError, NotFoundError } from '../../src/errors.js';
import { AuditTrail, assertAuditTrailIntact, verifyAuditTrail, type AuditVerification } from '../../src/audit/index.js';
import { tempDir } from '../helpers/tmp.js';
import { lines, tamperedCopy, withField, writeTrail } from './fixture.js';

function expectBad(result: AuditVerification, problem: string, firstBadEntry: number): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect({ problem: result.problem, firstBadEntry: result.firstBadEntry }).toEqual({ problem, firstBadEntry });
  expect(result.expectedSeq).toBe(firstBadEntry);
  expect(result.entries).toBe(firstBadEntry);
}

describe('verifyAuditTrail', () => {
  const dir = tempDir('vs-audit-verify-');

  it('accepts an intact trail of 50 entries and returns its head', async () => {
    const { file, key, head } = await writeTrail(dir);
    expect(lines(file)).toHaveLength(50);
    const result = await verifyAuditTrail({ file, macKey: key });
    expect(result).toEqual({ ok: true, entries: 50, head, closed: true });
    expect(head.seq).toBe(49);
    // The caller-kept head agrees.
    expect((await verifyAuditTrail({ file, macKey: key, expectedHead: head })).ok).toBe(true);
  });

  it('detects a modified field and names the entry', async () => {
    const { file, key } = await writeTrail(dir);
    const tenant = tamperedCopy(file, 'tenant', (ls) => ls.map((l, i) => (i === 20 ? withField(l, 'tenant', 'tenant-x') : l)));
    expectBad(await verifyAuditTrail({ file: tenant, macKey: key }), 'modified', 20);
    const outcome = tamperedCopy(file, 'outcome', (ls) => ls.map((l, i) => (i === 21 ? withField(l, 'outcome', 'error') : l)));
    expectBad(await verifyAuditTrail({ file: outcome, macKey: key }), 'modified', 21);
    // A byte-level edit that keeps the JSON valid (the last entry: no later entry links over it).
    const bytes = readFileSync(file, 'utf8').replace('"reason":"close"', '"reason":"clos3"');
    writeFileSync(`${file}.bytes`, bytes);
    expectBad(await verifyAuditTrail({ file: `${file}.bytes`, macKey: key }), 'modified', 49);
  });

  it('detects a modified seq, time or prev, and an added field', async () => {
    const { file, key } = await writeTrail(dir);
    const prev = JSON.parse(lines(file)[29]!).mac as string;
    for (const [field, value] of [
      ['time', '2000-01-01T00:00:00.000Z'],
      ['prev', prev.replace(/^./, prev[0] === '0' ? '1' : '0')],
      ['dekVersion', 99],
      ['note', 'added'],
    ] as const) {
      const copy = tamperedCopy(file, `field-${field}`, (ls) => ls.map((l, i) => (i === 30 ? withField(l, field, value) : l)));
      expectBad(await verifyAuditTrail({ file: copy, macKey: key }), 'modified', 30);
    }
    // A byte flipped inside the MAC itself.
    const copy = tamperedCopy(file, 'mac', (ls) =>
      ls.map((l, i) =>
        i === 30
          ? withField(
              l,
              'mac',
              (JSON.parse(l).mac as string).replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')),
            )
          : l,
      ),
    );
    expectBad(await verifyAuditTrail({ file: copy, macKey: key }), 'modified', 30);
  });

  it('detects a deleted entry, a deleted run and a deleted first entry', async () => {
    const { file, key } = await writeTrail(dir);
    expectBad(
      await verifyAuditTrail({ file: tamperedCopy(file, 'del1', (ls) => ls.filter((_, i) => i !== 17)), macKey: key }),
      'deleted',
      17,
    );
    expectBad(
      await verifyAuditTrail({ file: tamperedCopy(file, 'del3', (ls) => ls.filter((_, i) => i < 17 || i > 19)), macKey: key }),
      'deleted',
      17,
    );
    expectBad(await verifyAuditTrail({ file: tamperedCopy(file, 'del0', (ls) => ls.slice(1)), macKey: key }), 'deleted', 0);
  });

  it('detects an inserted forged entry', async () => {
    const { file, key } = await writeTrail(dir);
    const copy = tamperedCopy(file, 'forged', (ls) => {
      const genuine = JSON.parse(ls[25]!);
      // The attacker copies the shape, links it to entry 24 and guesses a MAC.
      const forged = { ...genuine, action: 'enable', outcome: 'ok', mac: randomBytes(32).toString('hex') };
      return [...ls.slice(0, 25), JSON.stringify(forged), ...ls.slice(25)];
    });
    expectBad(await verifyAuditTrail({ file: copy, macKey: key }), 'inserted', 25);
    // And at the very start.
    const first = tamperedCopy(file, 'forged0', (ls) => [withField(ls[0]!, 'mac', randomBytes(32).toString('hex')), ...ls]);
    expectBad(await verifyAuditTrail({ file: first, macKey: key }), 'inserted', 0);
  });

  it('detects an inserted duplicate of a genuine entry (replay)', async () => {
    const { file, key } = await writeTrail(dir);
    const later = tamperedCopy(file, 'dup-later', (ls) => [...ls.slice(0, 31), ls[12]!, ...ls.slice(31)]);
    expectBad(await verifyAuditTrail({ file: later, macKey: key }), 'inserted', 31);
    const adjacent = tamperedCopy(file, 'dup-adjacent', (ls) => [...ls.slice(0, 13), ls[12]!, ...ls.slice(13)]);
    expectBad(await verifyAuditTrail({ file: adjacent, macKey: key }), 'inserted', 13);
  });

  it('detects two swapped entries and an entry moved later', async () => {
    const { file, key } = await writeTrail(dir);
    const swapped = tamperedCopy(file, 'swap', (ls) => {
      const out = [...ls];
      [out[20], out[21]] = [out[21]!, out[20]!];
      return out;
    });
    expectBad(await verifyAuditTrail({ file: swapped, macKey: key }), 'reordered', 20);
    const moved = tamperedCopy(file, 'move', (ls) => [...ls.slice(0, 5), ...ls.slice(6, 40), ls[5]!, ...ls.slice(40)]);
    expectBad(await verifyAuditTrail({ file: moved, macKey: key }), 'reordered', 5);
  });

  it('detects a truncated tail: last entries removed, only the checkpoint removed, a half-written last line', async () => {
    const { file, key, head } = await writeTrail(dir);
    const cut = tamperedCopy(file, 'cut', (ls) => ls.slice(0, 45));
    expectBad(await verifyAuditTrail({ file: cut, macKey: key }), 'truncated', 45);
    expectBad(await verifyAuditTrail({ file: cut, macKey: key, expectedHead: head }), 'truncated', 45);
    const noCheckpoint = tamperedCopy(file, 'nocp', (ls) => ls.slice(0, 49));
    expectBad(await verifyAuditTrail({ file: noCheckpoint, macKey: key }), 'truncated', 49);

    const torn = `${file}.torn`;
    const bytes = readFileSync(file);
    writeFileSync(torn, bytes.subarray(0, bytes.length - 100));
    expectBad(await verifyAuditTrail({ file: torn, macKey: key }), 'truncated', 49);

    const empty = tamperedCopy(file, 'empty', () => []);
    expectBad(await verifyAuditTrail({ file: empty, macKey: key }), 'truncated', 0);
  });

  it('catches a rollback to an earlier clean close only with the caller-kept head', async () => {
    const { file, key } = await writeTrail(dir, 10);
    const early = `${file}.early`;
    copyFileSync(file, early);
    const trail = await AuditTrail.open({ file, macKey: key });
    trail.record({ action: 'shred', outcome: 'ok', tenant: 'tenant-a' });
    const head = await trail.close();
    // The attacker puts back the earlier copy, which ends with a valid close checkpoint.
    expect((await verifyAuditTrail({ file: early, macKey: key })).ok).toBe(true);
    expectBad(await verifyAuditTrail({ file: early, macKey: key, expectedHead: head }), 'truncated', 10);
    // Rolled back, then written on past the old head: seq 12 exists but is another entry.
    const continued = await AuditTrail.open({ file: early, macKey: key });
    continued.record({ action: 'enable', outcome: 'ok', tenant: 'tenant-a' });
    await continued.close();
    const forked = await verifyAuditTrail({ file: early, macKey: key, expectedHead: head });
    expectBad(forked, 'truncated', 12);
    expect(!forked.ok && forked.head?.seq).toBe(11);
  });

  it('reports a wrong MAC key at entry 0', async () => {
    const { file } = await writeTrail(dir);
    const result = await verifyAuditTrail({ file, macKey: new Uint8Array(randomBytes(32)) });
    expectBad(result, 'modified', 0);
    expect(!result.ok && result.detail).toMatch(/wrong audit key/);
  });

  it('reports a line that is not an entry as malformed', async () => {
    const { file, key } = await writeTrail(dir);
    const garbage = tamperedCopy(file, 'garbage', (ls) => ls.map((l, i) => (i === 8 ? l.slice(0, 40) : l)));
    expectBad(await verifyAuditTrail({ file: garbage, macKey: key }), 'malformed', 8);
    const blank = tamperedCopy(file, 'blank', (ls) => [...ls.slice(0, 8), '', ...ls.slice(8)]);
    expectBad(await verifyAuditTrail({ file: blank, macKey: key }), 'malformed', 8);
  });

  it('accepts a trail still being written when asked to', async () => {
    const { file, key } = await writeTrail(dir, 10);
    const open = tamperedCopy(file, 'open', (ls) => ls.slice(0, 9));
    expect(await verifyAuditTrail({ file: open, macKey: key, requireClosed: false })).toMatchObject({
      ok: true,
      entries: 9,
      closed: false,
    });
  });

  it('assertAuditTrailIntact throws CorruptDataError with file and reason', async () => {
    const { file, key } = await writeTrail(dir, 20);
    await expect(assertAuditTrailIntact({ file, macKey: key })).resolves.toMatchObject({ ok: true, entries: 20 });
    const copy = tamperedCopy(file, 'assert', (ls) => ls.filter((_, i) => i !== 4));
    const err = await assertAuditTrailIntact({ file: copy, macKey: key }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDataError);
    expect(err).toMatchObject({ code: 'VS_CORRUPT_DATA', file: copy, reason: 'deleted' });
    expect((err as Error).message).toMatch(/entry 4/);
    await expect(verifyAuditTrail({ file: `${file}.missing`, macKey: key })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('detects entries appended by someone without the key', async () => {
    const { file, key } = await writeTrail(dir, 10);
    const copy = `${file}.appended`;
    copyFileSync(file, copy);
    const last = JSON.parse(lines(file)[9]!);
    appendFileSync(
      copy,
      `${JSON.stringify({ ...last, seq: 10, prev: last.mac, action: 'enable', mac: randomBytes(32).toString('hex') })}\n`,
    );
    expectBad(await verifyAuditTrail({ file: copy, macKey: key }), 'modified', 10);
  });
});
