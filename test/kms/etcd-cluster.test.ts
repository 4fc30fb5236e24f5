import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListKeysCommand,
} from '@aws-sdk/client-kms';
import { Etcd3 } from 'etcd3';
import { startKeyService, type KeyServiceConfig, type RunningKeyService } from '../../src/kms/index.js';
import { EtcdKeyStore } from '../../src/kms/etcd-key-store.js';
import { LocalRootKeyFile } from '../../src/kms/root-key.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { startLatencyProxy } from '../helpers/latency-proxy.js';
import { ADMIN, REGION, testConfig } from './helpers.js';
import { testPort } from '../helpers/ports.js';

const PREFIX = 'vs-test/cluster/';
let cluster: EtcdCluster;
let dir: string;
const nodes: RunningKeyService[] = [];
const clients: KMSClient[] = [];

async function startNode(config: KeyServiceConfig = testConfig()): Promise<RunningKeyService> {
  const n = nodes.length;
  const node = await startKeyService({
    port: 0,
    dataDir: join(dir, `node${n}`),
    rootKeyFile: join(dir, 'root.key'),
    config,
    etcd: { endpoints: cluster.endpoints, prefix: PREFIX },
  });
  nodes.push(node);
  return node;
}

function client(node: RunningKeyService, creds = ADMIN): KMSClient {
  const c = new KMSClient({ endpoint: node.url, region: REGION, credentials: creds, maxAttempts: 1 });
  clients.push(c);
  return c;
}

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as Error).name;
  }
}

/** Polls `probe` until it returns true; resolves with the milliseconds it took, or -1. */
async function until(probe: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await probe().catch(() => false)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return -1;
}

let a: KMSClient;
let b: KMSClient;
beforeAll(async () => {
  cluster = await startEtcdCluster(testPort(46010));
  dir = await mkdtemp(join(tmpdir(), 'vs-kms-etcd-'));
  a = client(await startNode());
  b = client(await startNode());
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const n of nodes) await n.close();
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

const ctx = { 'vectorseal:collection': 'docs' };

describe('two key-service nodes on a three-member etcd cluster', () => {
  it('a key made on node A works on node B; a disable on A is refused on B within one second', async () => {
    const id = (await a.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const dk = await b.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ctx }));
    const back = await a.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx }));
    expect(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!))).toBe(true);

    await a.send(new DisableKeyCommand({ KeyId: id }));
    const disabledAt = Date.now();
    const took = await until(
      async () => (await errorName(b.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256' })))) === 'DisabledException',
      1000,
      5,
    );
    expect(took).toBeGreaterThanOrEqual(0);
    expect(Date.now() - disabledAt).toBeLessThan(1000);
    await b.send(new EnableKeyCommand({ KeyId: id }));
    expect(
      await until(async () => (await a.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.Enabled === true, 1000),
    ).toBeGreaterThanOrEqual(0);
  });

  it('what one node creates another finds at once, even while its watch lags 150 ms behind (keys, aliases, the store)', async () => {
    // Node C reaches etcd through a proxy that holds every reply 150 ms: its watch delivers A's changes late, for real.
    const proxy = await startLatencyProxy(cluster.endpoints[0]!, 150);
    const options = { endpoints: [proxy.url], prefix: PREFIX };
    const nodeC = await startKeyService({
      port: 0,
      dataDir: join(dir, 'lagging'),
      rootKeyFile: join(dir, 'root.key'),
      config: testConfig(),
      etcd: options,
    });
    const c = client(nodeC);
    try {
      for (let round = 0; round < 6; round++) {
        const id = (await a.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
        expect((await c.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyId).toBe(id);
        const alias = `alias/at-once-${round}`;
        await a.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: id }));
        const dk = await c.send(new GenerateDataKeyCommand({ KeyId: alias, KeySpec: 'AES_256', EncryptionContext: ctx }));
        expect(dk.KeyId).toContain(id);
      }
      // A name nobody created is still NotFound after the catch-up.
      expect(await errorName(c.send(new DescribeKeyCommand({ KeyId: 'alias/never-made' })))).toBe('NotFoundException');

      // At the store: the lagging snapshot lacks a change committed through another node until catchUp resolves.
      const root = await LocalRootKeyFile.open(join(dir, 'root.key'));
      const storeOptions = { prefix: 'vs-test/catch-up/' };
      const one = await EtcdKeyStore.open({ ...storeOptions, endpoints: cluster.endpoints }, root);
      const two = await EtcdKeyStore.open({ ...storeOptions, endpoints: [proxy.url] }, root);
      try {
        for (let i = 0; i < 4; i++) {
          const name = `alias/store-${i}`;
          const at = Date.now();
          await one.mutate((draft) => {
            draft.aliases[name] = { name, targetKeyId: '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f', creationDate: at, lastUpdatedDate: at };
          });
          expect(two.snapshot.aliases[name]).toBeUndefined();
          await two.catchUp();
          expect(two.snapshot.aliases[name]?.name).toBe(name);
        }
      } finally {
        await one.close();
        await two.close();
      }
    } finally {
      await nodeC.close();
      await proxy.close();
    }
  });

  it('concurrent changes through both nodes lose no update (compare-and-swap transactions)', async () => {
    const before = (await a.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length;
    const made = await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).send(new CreateKeyCommand({ Description: `k${i}` }))),
    );
    const ids = made.map((m) => m.KeyMetadata!.KeyId!);
    for (const c of [a, b]) {
      expect(
        await until(async () => (await c.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length === before + 16, 1000),
      ).toBeGreaterThanOrEqual(0);
    }
    // The same alias raced on both nodes: exactly one wins, and both agree which.
    const results = await Promise.allSettled([
      a.send(new CreateAliasCommand({ AliasName: 'alias/raced', TargetKeyId: ids[0]! })),
      b.send(new CreateAliasCommand({ AliasName: 'alias/raced', TargetKeyId: ids[1]! })),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as Error).name).toBe('AlreadyExistsException');
    const winner = results[0]!.status === 'fulfilled' ? ids[0] : ids[1];
    for (const c of [a, b]) {
      expect(
        await until(async () => (await c.send(new DescribeKeyCommand({ KeyId: 'alias/raced' }))).KeyMetadata!.KeyId === winner, 1000),
      ).toBeGreaterThanOrEqual(0);
    }
  });

  it('access keys changed through one node are honoured by the other within one second (watch)', async () => {
    const newcomer = { accessKeyId: 'AKIACLUSTER00001', secretAccessKey: 'cluster-secret-0123456789' };
    const onB = client(nodes[1]!, newcomer);
    expect(await errorName(onB.send(new ListKeysCommand({})))).toBe('UnrecognizedClientException');
    const config = testConfig();
    config.principals.push({ name: 'newcomer', ...newcomer, policy: [{ operations: ['ListKeys'] }] });
    await nodes[0]!.reload(config);
    expect(await until(async () => (await errorName(onB.send(new ListKeysCommand({})))) === 'no error', 1000, 5)).toBeGreaterThanOrEqual(0);
    await nodes[0]!.reload(testConfig());
    expect(
      await until(async () => (await errorName(onB.send(new ListKeysCommand({})))) === 'UnrecognizedClientException', 1000, 5),
    ).toBeGreaterThanOrEqual(0);
  });

  it('etcd holds no secret in the clear, and a record written without the root key is never served', async () => {
    const etcd = new Etcd3({ hosts: cluster.endpoints });
    try {
      const all = await etcd.getAll().prefix(PREFIX).buffers();
      const blob = Buffer.concat(Object.values(all));
      expect(blob.includes(Buffer.from(ADMIN.secretAccessKey))).toBe(false);
      expect(blob.includes(Buffer.from('"state"'))).toBe(false);
      const forged = '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f';
      await etcd.put(`${PREFIX}k/${forged}`).value(JSON.stringify({ keyId: forged, state: 'Enabled', backing: [] }));
      await new Promise((r) => setTimeout(r, 300));
      for (const c of [a, b]) expect(await errorName(c.send(new DescribeKeyCommand({ KeyId: forged })))).not.toBe('no error');
      await etcd.delete().key(`${PREFIX}k/${forged}`);
    } finally {
      etcd.close();
    }
    // Once the forgery is gone, a reload (the next poll) brings both nodes back.
    for (const c of [a, b])
      expect(await until(async () => (await errorName(c.send(new ListKeysCommand({})))) === 'no error', 5000)).toBeGreaterThanOrEqual(0);
  });

  it('one etcd member killed: both nodes keep serving reads and writes', async () => {
    await cluster.kill(0);
    try {
      for (const c of [a, b]) {
        const id = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
        const dk = await c.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256' }));
        const other = c === a ? b : a;
        expect(
          await until(
            async () => (await other.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }))).Plaintext!.length === 32,
            3000,
          ),
        ).toBeGreaterThanOrEqual(0);
      }
    } finally {
      await cluster.start(0);
      await cluster.waitHealthy();
    }
  });

  it('quorum lost: typed DependencyTimeoutException, no partial change; full service once quorum returns', async () => {
    const id = (await a.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const keysBefore = (await a.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length;
    await cluster.kill(1);
    await cluster.kill(2);
    try {
      // Past the staleness bound, nothing is served from a snapshot that cannot be confirmed.
      await new Promise((r) => setTimeout(r, 1300));
      for (const c of [a, b]) {
        expect(await errorName(c.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256' })))).toBe('DependencyTimeoutException');
        expect(await errorName(c.send(new DisableKeyCommand({ KeyId: id })))).toBe('DependencyTimeoutException');
        expect(await errorName(c.send(new CreateKeyCommand({})))).toBe('DependencyTimeoutException');
      }
    } finally {
      await cluster.start(1);
      await cluster.start(2);
      await cluster.waitHealthy(30_000);
    }
    for (const c of [a, b]) {
      expect(
        await until(async () => (await errorName(c.send(new ListKeysCommand({})))) === 'no error', 30_000, 200),
      ).toBeGreaterThanOrEqual(0);
      // The refused changes did not happen, on either node.
      expect((await c.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyState).toBe('Enabled');
      expect((await c.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length).toBe(keysBefore);
    }
    // Reads come back first; a write waits for the cluster to elect a leader, so it is retried within a bound.
    expect(
      await until(async () => (await errorName(a.send(new DisableKeyCommand({ KeyId: id })))) === 'no error', 30_000, 200),
    ).toBeGreaterThanOrEqual(0);
    expect(
      await until(async () => (await b.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyState === 'Disabled', 1000),
    ).toBeGreaterThanOrEqual(0);
  });
});
