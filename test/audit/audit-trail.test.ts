import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ClosedError, CorruptDataError, InvalidArgumentError } from '../../src/errors.js';
import { AuditTrail, type AuditEntry, verifyAuditTrail } from '../../src/audit/index.js';
import type { KeyAuditEvent } from '../../src/keys/key-manager.js';
import { tempDir } from '../helpers/tmp.js';
import { lines, tamperedCopy, withField, writeTrail } from './fixture.js';

const parse = (file: string): AuditEntry[] => lines(file).map((l) => JSON.parse(l) as AuditEntry);

describe('AuditTrail', () => {
  const dir = tempDir('vs-audit-trail-');

  it('writes one JSON line per entry with seq, time, prev and mac, in a 0600 file', async () => {
    const file = join(dir, 'nested', 'audit.log');
    const key = new Uint8Array(randomBytes(32));
    const trail = await AuditTrail.open({ file, macKey: key, principal: 'svc-a' });
    const head = trail.record({
      action: 'unwrap',
      outcome: 'ok',
      tenant: 't1',
      collectionId: 'c1',
      kek: 'k',
      kekVersion: 3,
      dekVersion: 2,
    });
    expect(head).toEqual(trail.head());
    expect(head.seq).toBe(1);
    const final = await trail.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const entries = parse(file);
    expect(entries.map((e) => [e.seq, e.action])).toEqual([
      [0, 'trail-open'],
      [1, 'unwrap'],
      [2, 'checkpoint'],
    ]);
    expect(entries[1]).toMatchObject({
      v: 1,
      principal: 'svc-a',
      tenant: 't1',
      collectionId: 'c1',
      kek: 'k',
      kekVersion: '3',
      dekVersion: 2,
    });
    expect(entries[1]!.prev).toBe(entries[0]!.mac);
    expect(Date.parse(entries[1]!.time)).not.toBeNaN();
    expect(final).toEqual({ trail: trail.trailId, seq: 2, mac: entries[2]!.mac });
    expect(entries.every((e) => e.trail === trail.trailId)).toBe(true);
  });

  it('continues the chain after reopening, and records whether the last session closed', async () => {
    const { file, key } = await writeTrail(dir, 10);
    const again = await AuditTrail.open({ file, macKey: key });
    again.record({ action: 'rotate-kek', outcome: 'ok', kek: 'store-kek', kekVersion: '3' });
    const head = await again.close();
    expect(head.seq).toBe(12);
    const entries = parse(file);
    expect(entries[10]).toMatchObject({ action: 'trail-open', details: { previousSeq: 9, previousClosed: true } });
    expect(new Set(entries.map((e) => e.trail)).size).toBe(1);
    expect(await verifyAuditTrail({ file, macKey: key, expectedHead: head })).toMatchObject({ ok: true, entries: 13, closed: true });
  });

  it('continues after a crash (no close checkpoint) and says so', async () => {
    const file = join(dir, 'crash.log');
    const key = new Uint8Array(randomBytes(32));
    const first = await AuditTrail.open({ file, macKey: key });
    first.record({ action: 'generate', outcome: 'ok', collectionId: 'c1', dekVersion: 1 });
    // The state a killed process leaves: every entry written (sync), no checkpoint.
    const crashed = join(dir, 'crashed.log');
    copyFileSync(file, crashed);
    await first.close();

    const second = await AuditTrail.open({ file: crashed, macKey: key });
    const head = await second.close();
    expect(parse(crashed)[2]).toMatchObject({ seq: 2, action: 'trail-open', details: { previousSeq: 1, previousClosed: false } });
    expect(await verifyAuditTrail({ file: crashed, macKey: key, expectedHead: head })).toMatchObject({ ok: true, entries: 4 });
  });

  it('refuses to continue a tampered, torn or foreign tail, naming the file and entry', async () => {
    const { file, key } = await writeTrail(dir, 12);
    const modified = tamperedCopy(file, 'tail-mod', (ls) =>
      ls.map((l, i) => (i === 11 ? withField(l, 'details', { reason: 'close', entries: 99 }) : l)),
    );
    const err = await AuditTrail.open({ file: modified, macKey: key }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDataError);
    expect(err).toMatchObject({ file: modified, reason: 'modified' });
    expect((err as Error).message).toMatch(/entry 11\b/);

    const torn = `${file}.torn`;
    writeFileSync(torn, readFileSync(file).subarray(0, -20));
    // A torn last line (what a power cut mid-append leaves) is cut back to the last whole entry, which must authenticate.
    const reopened = await AuditTrail.open({ file: torn, macKey: key });
    await reopened.close();
    expect((await verifyAuditTrail({ file: torn, macKey: key })).ok).toBe(true);

    const malformed = tamperedCopy(file, 'tail-junk', (ls) => [...ls, '{"not":"an entry"}']);
    await expect(AuditTrail.open({ file: malformed, macKey: key })).rejects.toMatchObject({
      reason: 'malformed',
      message: expect.stringMatching(/entry 12\b/),
    });

    await expect(AuditTrail.open({ file, macKey: new Uint8Array(randomBytes(32)) })).rejects.toBeInstanceOf(CorruptDataError);
    // The file was left alone.
    expect((await verifyAuditTrail({ file, macKey: key })).ok).toBe(true);
  });

  it('sends the same lines to an extra destination', async () => {
    const file = join(dir, 'extra.log');
    const key = new Uint8Array(randomBytes(32));
    const extra = new PassThrough();
    const chunks: Buffer[] = [];
    extra.on('data', (chunk: Buffer) => chunks.push(chunk));
    const trail = await AuditTrail.open({ file, macKey: key, extraDestination: extra });
    for (let i = 0; i < 20; i++) trail.record({ action: 'unwrap', outcome: 'ok', collectionId: `c${i}` });
    await trail.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(chunks).toString('utf8')).toBe(readFileSync(file, 'utf8'));
    expect(lines(file)).toHaveLength(22);
  });

  for (const sync of [true, false]) {
    it(`keeps a valid chain under 200 concurrent record calls (sync: ${sync})`, async () => {
      const file = join(dir, `concurrent-${sync}.log`);
      const key = new Uint8Array(randomBytes(32));
      const trail = await AuditTrail.open({ file, macKey: key, sync });
      const heads = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          await Promise.resolve();
          return trail.record({ action: i % 2 ? 'wrap' : 'unwrap', outcome: 'ok', collectionId: `c${i}`, dekVersion: i });
        }),
      );
      expect(new Set(heads.map((h) => h.seq)).size).toBe(200);
      await trail.flush();
      const head = await trail.close();
      expect(head.seq).toBe(201);
      expect(await verifyAuditTrail({ file, macKey: key, expectedHead: head })).toMatchObject({ ok: true, entries: 202 });
      expect(parse(file).map((e) => e.seq)).toEqual(Array.from({ length: 202 }, (_, i) => i));
    });
  }

  it('zeroes its derived key on close and refuses records afterwards', async () => {
    const file = join(dir, 'closed.log');
    const key = new Uint8Array(randomBytes(32));
    const trail = await AuditTrail.open({ file, macKey: key });
    const internal = (trail as unknown as { key: Buffer }).key;
    expect(internal.some((b) => b !== 0)).toBe(true);
    const head = await trail.close();
    expect(internal.every((b) => b === 0)).toBe(true);
    // The caller's key is the caller's.
    expect(key.some((b) => b !== 0)).toBe(true);
    expect(() => trail.record({ action: 'unwrap', outcome: 'ok' })).toThrow(ClosedError);
    await expect(trail.close()).resolves.toEqual(head);
  });

  it("takes the key manager's audit events as they are", async () => {
    const file = join(dir, 'keys.log');
    const key = new Uint8Array(randomBytes(32));
    const trail = await AuditTrail.open({ file, macKey: key, principal: 'store-owner' });
    const sink: (event: KeyAuditEvent) => void = (event) => {
      trail.record(event);
    };
    sink({ action: 'rotate-kek', outcome: 'ok', kek: 'main', keyId: 'local:main', kekVersion: '2' });
    sink({ action: 'unwrap', outcome: 'error', principal: 'reader', collectionId: 'c1', dekVersion: 1, error: 'VS_KEY_DISABLED' });
    await trail.close();
    const entries = parse(file);
    expect(entries[1]).toMatchObject({ action: 'rotate-kek', principal: 'store-owner', kek: 'main', keyId: 'local:main', kekVersion: '2' });
    expect(entries[2]).toMatchObject({ action: 'unwrap', outcome: 'error', principal: 'reader', error: 'VS_KEY_DISABLED' });
  });

  it('validates its arguments', async () => {
    const file = join(dir, 'args.log');
    await expect(AuditTrail.open({ file, macKey: new Uint8Array(16) })).rejects.toThrow(/expected Uint8Array of length 32, got length=16/);
    await expect(AuditTrail.open({ file, macKey: 'k' as unknown as Uint8Array })).rejects.toBeInstanceOf(InvalidArgumentError);
    const trail = await AuditTrail.open({ file, macKey: new Uint8Array(32).fill(1) });
    expect(() => trail.record({ action: 'Drop Table', outcome: 'ok' })).toThrow(InvalidArgumentError);
    expect(() => trail.record({ action: 'unwrap', outcome: 'maybe' as 'ok' })).toThrow(InvalidArgumentError);
    await trail.close();
    expect(await verifyAuditTrail({ file, macKey: new Uint8Array(32).fill(1) })).toMatchObject({ ok: true, entries: 2 });
  });
});
