import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import { openStore, type Store } from '../../src/store/index.js';
import { spawnCli } from '../helpers/cli.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { storeDirs } from '../helpers/store.js';
import { randomVectors } from '../store/helpers.js';
import { ADMIN, REGION, testConfig } from './helpers.js';
import { testPort } from '../helpers/ports.js';

let cluster: EtcdCluster;
let dir: string;
const children: ChildProcess[] = [];

/** One `vectorseal kms serve` process on the shared etcd cluster; resolves with its URL. */
async function serveNode(n: number, extra: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawnCli(
    [
      'kms',
      'serve',
      '--port',
      extra.length > 0 ? String(testPort(46030)) : '0',
      '--data-dir',
      join(dir, `node${n}`),
      '--config',
      join(dir, 'config.json'),
      '--root-key-file',
      join(dir, 'root.key'),
      '--create-root',
      '--etcd',
      cluster.endpoints.join(','),
      '--etcd-prefix',
      'vs-test/failover/',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; i < 300; i++) {
    const m = /listening on (http:\/\/\S+)/.exec(stderr);
    if (m) return { url: m[1]!, child };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`kms serve did not start: ${stderr}`);
}

beforeAll(async () => {
  cluster = await startEtcdCluster(testPort(46020));
  dir = await mkdtemp(join(tmpdir(), 'vs-kms-failover-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(testConfig()), { mode: 0o600 });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('failover between key-service nodes', () => {
  it('a node SIGKILLed mid-load: the store keeps writing through the other node and loses no acknowledged write', async () => {
    const first = await serveNode(0);
    // The second node starts after the first so both do not race to create the root key file.
    const second = await serveNode(1);
    const admin = new KMSClient({ endpoint: first.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
    const arn = (await admin.send(new CreateKeyCommand({ Description: 'failover KEK' }))).KeyMetadata!.Arn!;
    admin.destroy();

    const d = storeDirs();
    const providerFor = (endpoints: string[]) => ({
      'aws-kms': (e: { keyId: string }) =>
        new AwsKmsKekProvider({ keyId: e.keyId, endpoints, region: REGION, credentials: ADMIN, retryBaseDelayMs: 20 }),
    });
    const open = (endpoints: string[]): Promise<Store> =>
      openStore({
        dir: d.dir,
        create: true,
        stagingDir: d.stagingDir,
        keys: { provider: 'aws-kms', keyId: arn, config: { region: REGION } },
        providers: providerFor(endpoints),
      });

    const vectors = randomVectors(40, 8, 5);
    let store = await open([first.url, second.url]);
    const acknowledged: string[] = [];
    let killedAfter = -1;
    // Every round makes a collection (GenerateDataKey) and forgets cached DEKs (the next write unwraps with Decrypt).
    for (let round = 0; round < 24; round++) {
      if (round === 6) {
        // Killed from a timer, so the kill lands while a round (and possibly a KMS request) is in flight.
        setTimeout(() => {
          killedAfter = acknowledged.length;
          first.child.kill('SIGKILL');
        }, 15);
      }
      const name = `c${round}`;
      const c = await store.createCollection(name, { dim: 8 });
      await c.upsert(vectors.slice(0, 10).map((v, i) => ({ id: `${name}-${i}`, vector: v, metadata: { round } })));
      store.keys.evict();
      await c.upsert(vectors.slice(10, 20).map((v, i) => ({ id: `${name}-x${i}`, vector: v })));
      await c.flush();
      acknowledged.push(name);
    }
    expect(killedAfter).toBeGreaterThanOrEqual(6);
    expect(killedAfter).toBeLessThan(20);
    await new Promise((r) => setTimeout(r, 50));
    expect(first.child.signalCode).toBe('SIGKILL');
    // The first node served the writer before it died.
    const served = await readFile(join(dir, 'node0', 'audit.log'), 'utf8');
    expect(served).toContain('"GenerateDataKey"');
    await store.close();

    // Reopened through the surviving node only: every acknowledged collection and record is there.
    store = await open([second.url]);
    try {
      expect(
        store
          .listCollections()
          .map((c) => c.name)
          .sort(),
      ).toEqual([...acknowledged].sort());
      for (const name of acknowledged) {
        const c = store.collection(name);
        expect(c.get(`${name}-9`)?.metadata).toEqual({ round: Number(name.slice(1)) });
        expect(c.get(`${name}-x9`)).toBeDefined();
      }
    } finally {
      await store.close();
    }
  });

  it('kms serve --workers 2: two worker processes share the port and the state', async () => {
    const node = await serveNode(2, ['--workers', '2']);
    try {
      const kids = (await readFile(`/proc/${node.child.pid}/task/${node.child.pid}/children`, 'utf8')).trim().split(/\s+/);
      expect(kids).toHaveLength(2);
      const kms = new KMSClient({ endpoint: node.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
      const arn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
      // Fresh connections land on either worker; every one knows the key.
      for (let i = 0; i < 10; i++) {
        const c = new KMSClient({ endpoint: node.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
        expect((await c.send(new DescribeKeyCommand({ KeyId: arn }))).KeyMetadata!.Arn).toBe(arn);
        c.destroy();
      }
      kms.destroy();
    } finally {
      node.child.kill('SIGTERM');
      await new Promise((r) => node.child.once('exit', r));
    }
  });
});
