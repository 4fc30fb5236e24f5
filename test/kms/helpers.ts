import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { startKeyService, type KeyServiceConfig, type KeyServiceOptions, type RunningKeyService } from '../../src/kms/index.js';

export const REGION = 'us-east-1';
export const ACCOUNT = '111122223333';

export const ADMIN = { accessKeyId: 'AKIAADMIN0000001', secretAccessKey: 'admin-secret-0123456789abcdef' };
export const TENANT_A = { accessKeyId: 'AKIATENANTA00001', secretAccessKey: 'tenant-a-secret-0123456789' };
export const READER = { accessKeyId: 'AKIAREADER000001', secretAccessKey: 'reader-secret-0123456789ab' };

/** Admin may do anything; tenant A may use keys only for its collection; reader may only describe. */
export function testConfig(): KeyServiceConfig {
  return {
    region: REGION,
    accountId: ACCOUNT,
    principals: [
      { name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] },
      {
        name: 'tenant-a',
        ...TENANT_A,
        policy: [
          { operations: ['DescribeKey'], keys: ['alias/tenant-a'] },
          {
            operations: ['GenerateDataKey', 'Decrypt', 'ReEncrypt*'],
            keys: ['alias/tenant-a'],
            encryptionContext: { 'vectorseal:collection': ['tenant-a-docs', 'tenant-a-notes'] },
          },
        ],
      },
      { name: 'reader', ...READER, policy: [{ operations: ['DescribeKey', 'ListKeys'] }] },
    ],
  };
}

export interface Harness {
  service: RunningKeyService;
  dataDir: string;
  client(creds?: { accessKeyId: string; secretAccessKey: string }): KMSClient;
  restart(extra?: Partial<KeyServiceOptions>): Promise<void>;
  cleanup(): Promise<void>;
}

/** Starts the service on a loopback port in a fresh data directory. */
export async function startHarness(extra: Partial<KeyServiceOptions> = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vs-kms-'));
  const clients: KMSClient[] = [];
  const h: Harness = {
    service: await startKeyService({ port: 0, host: '127.0.0.1', dataDir, config: testConfig(), ...extra }),
    dataDir,
    client(creds = ADMIN) {
      const c = new KMSClient({ endpoint: h.service.url, region: REGION, credentials: creds, maxAttempts: 1 });
      clients.push(c);
      return c;
    },
    async restart(more = {}) {
      await h.service.close();
      h.service = await startKeyService({ port: 0, host: '127.0.0.1', dataDir, config: testConfig(), ...extra, ...more });
    },
    async cleanup() {
      for (const c of clients) c.destroy();
      await h.service.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

/** A clock tests can move. */
export function manualClock(start = Date.now()): { now(): number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export const DAY = 24 * 60 * 60 * 1000;
