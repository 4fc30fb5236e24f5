import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  GenerateDataKeyCommand,
  ListKeysCommand,
} from '@aws-sdk/client-kms';
import { ADMIN, READER, REGION, TENANT_A, startHarness, type Harness } from './helpers.js';

let h: Harness;
let tenantKey: string;
let otherKey: string;
beforeAll(async () => {
  h = await startHarness();
  const kms = h.client();
  tenantKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  otherKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/tenant-a', TargetKeyId: tenantKey }));
});
afterAll(async () => h.cleanup());

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).name;
  }
  return 'no error';
}

/** Signs a KMS request by hand, so tests can send what a conforming client never would. */
function signedRequest(opts: { body: string; secret?: string; accessKeyId?: string; date?: Date; target?: string }) {
  const url = new URL(h.service.url);
  const date = opts.date ?? new Date();
  const amzDate = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': 'application/x-amz-json-1.1',
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-target': `TrentService.${opts.target ?? 'ListKeys'}`,
  };
  const signed = Object.keys(headers).sort();
  const canonical = ['POST', '/', '', signed.map((k) => `${k}:${headers[k]}\n`).join(''), signed.join(';'), sha256(opts.body)].join('\n');
  const scope = `${day}/${REGION}/kms/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key: Buffer = hmac(`AWS4${opts.secret ?? ADMIN.secretAccessKey}`, day);
  for (const part of [REGION, 'kms', 'aws4_request']) key = hmac(key, part);
  const signature = hmac(key, toSign).toString('hex');
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${opts.accessKeyId ?? ADMIN.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return { url: `${h.service.url}/`, headers };
}
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const hmac = (k: string | Buffer, s: string) => createHmac('sha256', k).update(s).digest();

describe('SigV4', () => {
  it('a hand-signed request is accepted (the verifier is not just trusting the SDK)', async () => {
    const body = '{}';
    const { url, headers } = signedRequest({ body });
    const res = await fetch(url, { method: 'POST', headers, body });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('content-type')).toBe('application/x-amz-json-1.1');
  });

  it('a tampered body fails with InvalidSignatureException', async () => {
    const { url, headers } = signedRequest({ body: '{"Limit":1}' });
    const res = await fetch(url, { method: 'POST', headers, body: '{"Limit":2}' });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-amzn-requestid')).toBeTruthy();
    expect(((await res.json()) as { __type: string }).__type).toBe('InvalidSignatureException');
  });

  it('a mismatching x-amz-content-sha256 fails', async () => {
    const { url, headers } = signedRequest({ body: '{}' });
    const res = await fetch(url, { method: 'POST', headers: { ...headers, 'x-amz-content-sha256': sha256('{"x":1}') }, body: '{}' });
    expect(((await res.json()) as { __type: string }).__type).toBe('InvalidSignatureException');
  });

  it('a stale date fails with InvalidSignatureException', async () => {
    const body = '{}';
    const { url, headers } = signedRequest({ body, date: new Date(Date.now() - 16 * 60_000) });
    const res = await fetch(url, { method: 'POST', headers, body });
    expect(((await res.json()) as { __type: string }).__type).toBe('InvalidSignatureException');
  });

  it('a missing date or Authorization header is refused', async () => {
    const body = '{}';
    const { url, headers } = signedRequest({ body });
    const { 'x-amz-date': _date, ...noDate } = headers;
    const r1 = await fetch(url, { method: 'POST', headers: noDate, body });
    expect(((await r1.json()) as { __type: string }).__type).toBe('InvalidSignatureException');
    const { authorization: _auth, ...noAuth } = headers;
    const r2 = await fetch(url, { method: 'POST', headers: noAuth, body });
    expect(((await r2.json()) as { __type: string }).__type).toBe('MissingAuthenticationTokenException');
  });

  it('the SDK with a wrong secret gets InvalidSignatureException; an unknown key UnrecognizedClientException', async () => {
    const wrong = h.client({ accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'not-the-secret-at-all-000' });
    expect(await errorName(wrong.send(new ListKeysCommand({})))).toBe('InvalidSignatureException');
    const unknown = h.client({ accessKeyId: 'AKIAUNKNOWN00000', secretAccessKey: 'whatever-secret-0000000' });
    expect(await errorName(unknown.send(new ListKeysCommand({})))).toBe('UnrecognizedClientException');
  });

  it('an oversized body gets a clean error and the service keeps serving', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) });
    const { url, headers } = signedRequest({ body });
    const res = await fetch(url, { method: 'POST', headers, body }).catch(() => undefined);
    if (res !== undefined) {
      expect(res.status).toBe(400);
      expect(((await res.json()) as { __type: string }).__type).toBe('ValidationException');
    }
    expect((await h.client().send(new ListKeysCommand({}))).Keys!.length).toBeGreaterThan(0);
  });

  it('unknown operations and bad JSON are refused cleanly', async () => {
    const a = signedRequest({ body: '{}', target: 'LaunchMissiles' });
    const r1 = await fetch(a.url, { method: 'POST', headers: a.headers, body: '{}' });
    expect(((await r1.json()) as { __type: string }).__type).toBe('UnknownOperationException');
    const b = signedRequest({ body: '{not json' });
    const r2 = await fetch(b.url, { method: 'POST', headers: b.headers, body: '{not json' });
    expect(((await r2.json()) as { __type: string }).__type).toBe('SerializationException');
  });
});

describe('policy', () => {
  const ctxA = { 'vectorseal:store': 's', 'vectorseal:collection': 'tenant-a-docs', 'vectorseal:dek-version': '1' };

  it('allows listed operations on listed keys with matching encryption context', async () => {
    const tenant = h.client(TENANT_A);
    const dk = await tenant.send(new GenerateDataKeyCommand({ KeyId: 'alias/tenant-a', KeySpec: 'AES_256', EncryptionContext: ctxA }));
    const d = await tenant.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctxA, KeyId: tenantKey }));
    expect(d.Plaintext).toHaveLength(32);
    const notes = { ...ctxA, 'vectorseal:collection': 'tenant-a-notes' };
    await tenant.send(new GenerateDataKeyCommand({ KeyId: tenantKey, KeySpec: 'AES_256', EncryptionContext: notes }));
    expect((await tenant.send(new DescribeKeyCommand({ KeyId: 'alias/tenant-a' }))).KeyMetadata!.KeyId).toBe(tenantKey);
  });

  it('denies other contexts, other keys and other operations with AccessDeniedException', async () => {
    const tenant = h.client(TENANT_A);
    const ctxB = { ...ctxA, 'vectorseal:collection': 'tenant-b-docs' };
    expect(
      await errorName(tenant.send(new GenerateDataKeyCommand({ KeyId: tenantKey, KeySpec: 'AES_256', EncryptionContext: ctxB }))),
    ).toBe('AccessDeniedException');
    expect(await errorName(tenant.send(new GenerateDataKeyCommand({ KeyId: tenantKey, KeySpec: 'AES_256' })))).toBe(
      'AccessDeniedException',
    );
    expect(await errorName(tenant.send(new GenerateDataKeyCommand({ KeyId: otherKey, KeySpec: 'AES_256', EncryptionContext: ctxA })))).toBe(
      'AccessDeniedException',
    );
    expect(await errorName(tenant.send(new DisableKeyCommand({ KeyId: tenantKey })))).toBe('AccessDeniedException');
    expect(await errorName(tenant.send(new CreateKeyCommand({})))).toBe('AccessDeniedException');
    // Unknown keys are denied, not reported missing: no probing for key ids.
    expect(await errorName(tenant.send(new DescribeKeyCommand({ KeyId: 'alias/does-not-exist' })))).toBe('AccessDeniedException');
    const admin = h.client();
    const other = await admin.send(new GenerateDataKeyCommand({ KeyId: otherKey, KeySpec: 'AES_256', EncryptionContext: ctxA }));
    expect(await errorName(tenant.send(new DecryptCommand({ CiphertextBlob: other.CiphertextBlob, EncryptionContext: ctxA })))).toBe(
      'AccessDeniedException',
    );
    const reader = h.client(READER);
    expect((await reader.send(new ListKeysCommand({}))).Keys!.length).toBeGreaterThan(0);
    expect(await errorName(reader.send(new DecryptCommand({ CiphertextBlob: other.CiphertextBlob, EncryptionContext: ctxA })))).toBe(
      'AccessDeniedException',
    );
  });
});

describe('audit', () => {
  it('logs every request, allowed or denied, with no secrets or key material', async () => {
    const admin = h.client();
    const ctx = { 'vectorseal:collection': 'tenant-a-docs' };
    const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: tenantKey, KeySpec: 'AES_256', EncryptionContext: ctx }));
    await errorName(h.client(READER).send(new GenerateDataKeyCommand({ KeyId: tenantKey, KeySpec: 'AES_256' })));
    const lines = (await readFile(join(h.dataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; audit: Record<string, unknown> });
    const gdk = lines.filter((l) => l.audit.operation === 'GenerateDataKey');
    const ok = gdk.find(
      (l) => l.audit.outcome === 'success' && l.audit.principal === 'admin' && String(l.audit.keyArns).includes(tenantKey),
    );
    expect(ok?.audit).toMatchObject({ accessKeyId: ADMIN.accessKeyId, encryptionContext: ctx, status: 200 });
    expect((ok?.audit.keyArns as string[])[0]).toContain(tenantKey);
    expect(typeof ok?.time).toBe('string');
    expect(ok?.audit.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      gdk.some((l) => l.audit.outcome === 'denied' && l.audit.principal === 'reader' && l.audit.errorType === 'AccessDeniedException'),
    ).toBe(true);
    expect(lines.some((l) => l.audit.errorType === 'InvalidSignatureException')).toBe(true);
    const raw = await readFile(join(h.dataDir, 'audit.log'), 'utf8');
    for (const secret of [
      ADMIN.secretAccessKey,
      TENANT_A.secretAccessKey,
      READER.secretAccessKey,
      Buffer.from(dk.Plaintext!).toString('base64'),
      Buffer.from(dk.CiphertextBlob!).toString('base64'),
      Buffer.from(dk.Plaintext!).toString('hex'),
    ]) {
      expect(raw).not.toContain(secret);
    }
  });
});
