import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteAliasCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListKeysCommand,
  UpdateAliasCommand,
} from '@aws-sdk/client-kms';
import { deriveMessageKey } from '../../src/kms/ciphertext.js';
import { startKeyService } from '../../src/kms/index.js';
import { poolRandomBytes } from '../../src/kms/random-pool.js';
import { ADMIN, REGION, startHarness, TENANT_A, testConfig, type Harness } from './helpers.js';

describe('the hot path computes what the slow path did', () => {
  it('the two-HMAC message key is HKDF-SHA256 (node:crypto hkdfSync) for random inputs', () => {
    const label = Buffer.from('vectorseal/kms/message-key/v2\0', 'utf8');
    for (let i = 0; i < 64; i++) {
      const key = randomBytes(32);
      const nonce = randomBytes(32);
      const header = randomBytes(22);
      const expected = Buffer.from(hkdfSync('sha256', key, nonce, Buffer.concat([label, header]), 32));
      expect(deriveMessageKey(key, nonce, header).equals(expected)).toBe(true);
    }
  });

  it('pooled random bytes are never handed out twice, across refills and sizes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = [16, 32, 1, 255, 256, 257, 1024][i % 7]!;
      const b = poolRandomBytes(n);
      expect(b.length).toBe(n);
      if (n >= 16) {
        const hex = b.toString('hex');
        expect(seen.has(hex)).toBe(false);
        seen.add(hex);
      }
    }
  });
});

describe('group-committed audit lines', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('every answered request is already in the audit log when its answer arrives, under concurrency', async () => {
    const admin = h.client();
    const keyId = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const clients = Array.from({ length: 8 }, () => h.client());
    const file = join(h.dataDir, 'audit.log');
    const missing: string[] = [];
    await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const out = await clients[i % clients.length]!.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
        // Read synchronously, before anything else can run: the line must be there already.
        const id = out.$metadata.requestId!;
        if (!readFileSync(file, 'utf8').includes(`"requestId":"${id}"`)) missing.push(id);
      }),
    );
    expect(missing).toEqual([]);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = lines[lines.length - 1]!;
    // The line keeps the shape pino wrote.
    expect(Object.keys(last)).toEqual(['level', 'time', 'service', 'audit', 'msg']);
    expect(last).toMatchObject({ level: 30, service: 'vectorseal-kms', msg: 'success' });
  });

  it('a request whose audit line cannot be written is not acknowledged', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vs-kms-auditfull-'));
    // Writes to /dev/full fail with ENOSPC: a real full device, no mock.
    const service = await startKeyService({ port: 0, host: '127.0.0.1', dataDir, config: testConfig(), auditFile: '/dev/full' });
    const kms = new KMSClient({ endpoint: service.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
    try {
      await expect(kms.send(new ListKeysCommand({}))).rejects.toMatchObject({
        name: 'KMSInternalException',
        $metadata: { httpStatusCode: 500 },
      });
      await expect(kms.send(new CreateKeyCommand({}))).rejects.toMatchObject({ name: 'KMSInternalException' });
    } finally {
      kms.destroy();
      await service.close().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('per-snapshot indexes follow every change at once', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.cleanup();
  });
  const errorName = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: Error) => e.name,
    );

  it('a disabled key is refused by the very next request, and served again once enabled', async () => {
    const kms = h.client();
    const keyId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    // Warm every per-snapshot index and cache on this key first.
    for (let i = 0; i < 5; i++) await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' })))).toBe('DisabledException');
    await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' })))).toBe('ok');
  });

  it("an alias created, moved or deleted changes the next request's policy decision", async () => {
    const admin = h.client();
    const tenant = h.client(TENANT_A);
    const first = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const second = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    // tenant-a's policy names only alias/tenant-a, so the key id is allowed exactly while that alias points at it.
    const gdk = (keyId: string) =>
      errorName(
        tenant.send(
          new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { 'vectorseal:collection': 'tenant-a-docs' } }),
        ),
      );
    expect(await gdk(first)).toBe('AccessDeniedException');
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/tenant-a', TargetKeyId: first }));
    expect(await gdk(first)).toBe('ok');
    expect(await gdk(second)).toBe('AccessDeniedException');
    await admin.send(new UpdateAliasCommand({ AliasName: 'alias/tenant-a', TargetKeyId: second }));
    expect(await gdk(first)).toBe('AccessDeniedException');
    expect(await gdk(second)).toBe('ok');
    await admin.send(new DeleteAliasCommand({ AliasName: 'alias/tenant-a' }));
    expect(await gdk(second)).toBe('AccessDeniedException');
  });
});
