import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { AuditTrail, type AuditEvent, detailNameAllowed, verifyAuditTrail } from '../../src/audit/index.js';
import { tempDir } from '../helpers/tmp.js';

const ALLOWED_FIELDS = new Set([
  'v',
  'trail',
  'seq',
  'time',
  'action',
  'outcome',
  'principal',
  'tenant',
  'collectionId',
  'kek',
  'keyId',
  'kekVersion',
  'dekVersion',
  'error',
  'details',
  'prev',
  'mac',
]);

describe('audit redaction', () => {
  const dir = tempDir('vs-audit-redact-');

  it('never writes key material, vectors, metadata or secrets, even when the event carries them', async () => {
    const file = join(dir, 'audit.log');
    const key = new Uint8Array(randomBytes(32));
    const dek = randomBytes(32);
    const master = randomBytes(32);
    const vector = Float32Array.from({ length: 16 }, (_, i) => 1234.5678 + i);
    const secrets = {
      title: 'METADATA-TITLE-8c1f',
      pin: 'PIN-77331',
      password: 'PASSWORD-hunter2',
      plaintext: 'PLAINTEXT-2b9e',
      token: 'TOKEN-a55a',
    };
    const shipped = new PassThrough();
    let shippedText = '';
    shipped.on('data', (chunk: Buffer) => (shippedText += chunk.toString('utf8')));
    const trail = await AuditTrail.open({ file, macKey: key, extraDestination: shipped });
    const hostile = {
      action: 'unwrap',
      outcome: 'ok',
      collectionId: 'c1',
      dekVersion: 1,
      dek,
      key: master,
      keyMaterial: master.toString('hex'),
      plaintext: secrets.plaintext,
      vector,
      vectors: [Array.from(vector)],
      metadata: { title: secrets.title },
      secret: master.toString('base64'),
      pin: secrets.pin,
      password: secrets.password,
      error: Object.assign(new Error(`failed with ${secrets.pin}`), { code: 'VS_WRONG_KEY' }),
      details: {
        reason: 'rotation',
        pages: 12,
        metadata: { title: secrets.title },
        metadataTitle: secrets.title,
        dek: dek.toString('hex'),
        wrappedKey: dek.toString('base64'),
        plaintextKey: dek.toString('hex'),
        userPin: secrets.pin,
        apiToken: secrets.token,
        vector: Array.from(vector),
        blob: dek,
        nested: { deep: secrets.password },
        keyId: 'alias/tenant-a',
        dekVersion: 2,
      },
    } as unknown as AuditEvent;
    trail.record(hostile);
    trail.record({ ...hostile, action: 'generate' });
    await trail.close();

    for (const text of [readFileSync(file, 'utf8'), shippedText]) {
      const bytes = Buffer.from(text, 'utf8');
      for (const secret of [dek, master]) {
        expect(bytes.includes(secret)).toBe(false);
        for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(text).not.toContain(secret.toString(encoding));
      }
      expect(bytes.includes(Buffer.from(vector.buffer))).toBe(false);
      expect(text).not.toContain('1234.5678');
      for (const value of Object.values(secrets)) expect(text).not.toContain(value);
      for (const line of text.trim().split('\n')) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        for (const field of Object.keys(entry)) expect(ALLOWED_FIELDS.has(field), field).toBe(true);
      }
    }
    const entry = JSON.parse(readFileSync(file, 'utf8').split('\n')[1]!);
    expect(entry).toMatchObject({
      action: 'unwrap',
      error: 'VS_WRONG_KEY',
      details: { reason: 'rotation', pages: 12, keyId: 'alias/tenant-a', dekVersion: 2 },
    });
    expect(Object.keys(entry.details).sort()).toEqual(['dekVersion', 'keyId', 'pages', 'reason']);
    expect((await verifyAuditTrail({ file, macKey: key })).ok).toBe(true);
  });

  it('allows key references in details but not key words without a reference suffix', () => {
    for (const name of ['keyId', 'kekVersion', 'dekVersion', 'key_arn', 'reason', 'pages', 'newKeyId'])
      expect(detailNameAllowed(name)).toBe(true);
    for (const name of [
      'key',
      'dek',
      'wrappedKey',
      'masterKey',
      'userPin',
      'PIN',
      'secretValue',
      'metadata',
      'vectorData',
      'plaintext',
      'a b',
    ]) {
      expect(detailNameAllowed(name)).toBe(false);
    }
  });

  it('keeps strings well-formed and bounded so the MAC survives the round trip', async () => {
    const file = join(dir, 'strings.log');
    const key = new Uint8Array(randomBytes(32));
    const trail = await AuditTrail.open({ file, macKey: key });
    trail.record({
      action: 'open',
      outcome: 'ok',
      principal: 'bad\uD800surrogate "quoted"\n\u2028',
      tenant: 'x'.repeat(5000),
      details: { n: Number.NaN, ok: true, none: null },
    });
    await trail.close();
    const entry = JSON.parse(readFileSync(file, 'utf8').split('\n')[1]!);
    expect(entry.principal).toBe('bad\uFFFDsurrogate "quoted"\n\u2028');
    expect(entry.tenant.length).toBeLessThan(300);
    expect(entry.details).toEqual({ ok: true, none: null });
    expect((await verifyAuditTrail({ file, macKey: key })).ok).toBe(true);
  });
});

describe('one redaction list', () => {
  it('the store logger and the audit trail redact the same names; the trail keeps only its own fields at the top', async () => {
    const { REDACTED_FIELDS } = await import('../../src/util/redacted-fields.js');
    const logger = await import('../../src/store/logger.js');
    const audit = await import('../../src/audit/redaction.js');
    expect(audit.REDACTED_FIELDS).toBe(REDACTED_FIELDS);
    for (const name of REDACTED_FIELDS) {
      expect(logger.REDACT_PATHS).toContain(name);
      expect(logger.REDACT_PATHS).toContain(`*.${name}`);
      expect(audit.REDACT_PATHS).toContain(`details.${name}`);
    }
    // `kek` at the trail's top level is the sanitized KEK name, so it stays.
    expect(audit.REDACT_PATHS.filter((p) => !p.startsWith('details.'))).toEqual(REDACTED_FIELDS.filter((n) => n !== 'kek'));
  });
});
