import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, GenerateDataKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { deriveMessageKey } from '../../src/kms/ciphertext.js';
import { startKeyService } from '../../src/kms/index.js';
import { poolRandomBytes } from '../../src/kms/random-pool.js';
import { ADMIN, REGION, startHarness, testConfig, type Harness } from './helpers.js';

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
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
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
      await expect(kms.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'KMSInternalException', $metadata: { httpStatusCode: 500 } });
      await expect(kms.send(new CreateKeyCommand({}))).rejects.toMatchObject({ name: 'KMSInternalException' });
    } finally {
      kms.destroy();
      await service.close().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
