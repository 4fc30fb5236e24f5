import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  KMSClient,
  ReplicateKeyCommand,
  RotateKeyOnDemandCommand,
  UpdatePrimaryRegionCommand,
} from '@aws-sdk/client-kms';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import type { KekConfig } from '../../src/keys/kek-config.js';
import type { KekBinding } from '../../src/keys/provider-registry.js';
import { startKeyService, type RunningKeyService } from '../../src/kms/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { storeDirs } from '../helpers/store.js';
import { randomVectors } from '../store/helpers.js';
import { ADMIN, DAY, manualClock, testConfig } from './helpers.js';
import { testPort } from '../helpers/ports.js';

const EAST = 'us-east-1';
const WEST = 'eu-west-1';
const PORTS: Record<string, number> = { [EAST]: testPort(46040), [WEST]: testPort(46041) };
let dir: string;
const services: Record<string, RunningKeyService> = {};
const clients: KMSClient[] = [];

async function startRegion(region: string): Promise<RunningKeyService> {
  const other = region === EAST ? WEST : EAST;
  const config = { ...testConfig(), region };
  return startKeyService({
    port: PORTS[region]!,
    dataDir: join(dir, region),
    // Regions that replicate to each other share the root key.
    rootKeyFile: join(dir, 'root.key'),
    config,
    peers: { [other]: { endpoint: `http://127.0.0.1:${PORTS[other]}`, credentials: ADMIN } },
  });
}

function client(region: string): KMSClient {
  const c = new KMSClient({ endpoint: `http://127.0.0.1:${PORTS[region]}`, region, credentials: ADMIN, maxAttempts: 1 });
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

let east: KMSClient;
let west: KMSClient;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vs-kms-mrk-'));
  services[EAST] = await startRegion(EAST);
  services[WEST] = await startRegion(WEST);
  east = client(EAST);
  west = client(WEST);
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const s of Object.values(services)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe('multi-region keys across two key-service regions', () => {
  it(
    'ReplicateKey, then a ciphertext from either region decrypts in the other; ' + 'rotation follows the primary, enablement is per region',
    async () => {
      const primary = (await east.send(new CreateKeyCommand({ MultiRegion: true, Description: 'mrk' }))).KeyMetadata!;
      const id = primary.KeyId!;
      expect(id).toMatch(/^mrk-/);
      const rep = await east.send(
        new ReplicateKeyCommand({ KeyId: id, ReplicaRegion: WEST, Description: 'west copy', Tags: [{ TagKey: 'r', TagValue: 'w' }] }),
      );
      expect(rep.ReplicaKeyMetadata).toMatchObject({
        KeyId: id,
        Arn: `arn:aws:kms:${WEST}:111122223333:key/${id}`,
        MultiRegion: true,
        Description: 'west copy',
      });
      expect(rep.ReplicaKeyMetadata!.MultiRegionConfiguration).toMatchObject({
        MultiRegionKeyType: 'REPLICA',
        PrimaryKey: { Region: EAST },
      });
      expect((await east.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.MultiRegionConfiguration!.ReplicaKeys).toEqual([
        { Arn: `arn:aws:kms:${WEST}:111122223333:key/${id}`, Region: WEST },
      ]);
      expect(await errorName(east.send(new ReplicateKeyCommand({ KeyId: id, ReplicaRegion: WEST })))).toBe('AlreadyExistsException');
      expect(await errorName(east.send(new ReplicateKeyCommand({ KeyId: id, ReplicaRegion: 'ap-south-9' })))).toBe('ValidationException');

      const ctx = { purpose: 'mrk-test' };
      const fromEast = (await east.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('east secret'), EncryptionContext: ctx })))
        .CiphertextBlob!;
      const inWest = await west.send(new DecryptCommand({ CiphertextBlob: fromEast, EncryptionContext: ctx }));
      expect(Buffer.from(inWest.Plaintext!).toString()).toBe('east secret');
      expect(inWest.KeyId).toBe(`arn:aws:kms:${WEST}:111122223333:key/${id}`);
      const fromWest = (await west.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('west secret') }))).CiphertextBlob!;
      expect(Buffer.from((await east.send(new DecryptCommand({ CiphertextBlob: fromWest, KeyId: id }))).Plaintext!).toString()).toBe(
        'west secret',
      );

      // Rotation is the primary's; the new material reaches the replica.
      expect(await errorName(west.send(new RotateKeyOnDemandCommand({ KeyId: id })))).toBe('UnsupportedOperationException');
      await east.send(new RotateKeyOnDemandCommand({ KeyId: id }));
      const rotated = (await east.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('v2') }))).CiphertextBlob!;
      expect(Buffer.from(rotated).readUInt32BE(18)).toBe(2);
      expect(Buffer.from((await west.send(new DecryptCommand({ CiphertextBlob: rotated }))).Plaintext!).toString()).toBe('v2');

      // Disabling is per region, as in AWS.
      await west.send(new DisableKeyCommand({ KeyId: id }));
      expect(await errorName(west.send(new DecryptCommand({ CiphertextBlob: fromEast, EncryptionContext: ctx })))).toBe(
        'DisabledException',
      );
      expect((await east.send(new DecryptCommand({ CiphertextBlob: fromEast, EncryptionContext: ctx }))).Plaintext).toBeDefined();
      await west.send(new EnableKeyCommand({ KeyId: id }));

      // UpdatePrimaryRegion moves the primary; rotation then happens in the west.
      await east.send(new UpdatePrimaryRegionCommand({ KeyId: id, PrimaryRegion: WEST }));
      expect((await west.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.MultiRegionConfiguration!.MultiRegionKeyType).toBe(
        'PRIMARY',
      );
      expect((await east.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.MultiRegionConfiguration).toMatchObject({
        MultiRegionKeyType: 'REPLICA',
        PrimaryKey: { Region: WEST },
      });
      expect(await errorName(east.send(new RotateKeyOnDemandCommand({ KeyId: id })))).toBe('UnsupportedOperationException');
      await west.send(new RotateKeyOnDemandCommand({ KeyId: id }));
      const v3 = (await west.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('v3') }))).CiphertextBlob!;
      expect(Buffer.from((await east.send(new DecryptCommand({ CiphertextBlob: v3 }))).Plaintext!).toString()).toBe('v3');
      // Single-region keys do not replicate.
      const single = (await east.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      expect(await errorName(east.send(new ReplicateKeyCommand({ KeyId: single, ReplicaRegion: WEST })))).toBe(
        'UnsupportedOperationException',
      );
    },
  );

  it(
    'a store whose DEKs are wrapped by the same multi-region key in both regions opens from the west ' + 'after the east is stopped',
    async () => {
      const id = (await east.send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!.KeyId!;
      await east.send(new ReplicateKeyCommand({ KeyId: id, ReplicaRegion: WEST }));
      // Each region's endpoint is the caller's KEK configuration, never the keyring's.
      const entry = (region: string): KekConfig => ({
        provider: 'aws-kms',
        keyId: `arn:aws:kms:${region}:111122223333:key/${id}`,
        config: { endpoint: `http://127.0.0.1:${PORTS[region]}`, region },
      });
      const providers = {
        'aws-kms': (b: KekBinding, _name: string, c: KekConfig | undefined) =>
          new AwsKmsKekProvider({
            keyId: b.keyId,
            endpoint: c?.config?.['endpoint'] as string,
            region: c?.config?.['region'] as string,
            credentials: ADMIN,
            maxAttempts: 2,
            retryBaseDelayMs: 1,
          }),
      };
      const d = storeDirs();
      const options = { dir: d.dir, stagingDir: d.stagingDir, providers, keks: { default: entry(EAST), west: entry(WEST) } };
      let store: Store = await openStore({
        ...options,
        create: true,
        keys: { provider: 'aws-kms', keyId: entry(EAST).keyId, config: entry(EAST).config! },
      });
      const docs = await store.createCollection('docs', { dim: 8 });
      const v = randomVectors(50, 8, 3);
      await docs.upsert(v.map((vector, i) => ({ id: `d${i}`, vector, metadata: { i } })));
      await store.keys.addKek('west', entry(WEST));
      expect(await store.keys.attachKek('west')).toBeGreaterThanOrEqual(1);
      await docs.flush();
      const before = docs.search(v[5]!, 3);
      await store.close();

      await services[EAST]!.close();
      store = await openStore(options);
      try {
        expect(store.collection('docs').count).toBe(50);
        expect(store.collection('docs').search(v[5]!, 3)).toEqual(before);
        expect(store.collection('docs').get('d7')?.metadata).toEqual({ i: 7 });
      } finally {
        await store.close();
      }
    },
  );

  it('automatic rotation of a primary reaches its replica', async () => {
    const clock = manualClock();
    const ports: Record<string, number> = { [EAST]: testPort(46042), [WEST]: testPort(46043) };
    const started: RunningKeyService[] = [];
    const regional = (region: string) =>
      startKeyService({
        port: ports[region]!,
        dataDir: join(dir, `auto-${region}`),
        rootKeyFile: join(dir, 'root.key'),
        config: { ...testConfig(), region },
        clock,
        peers: {
          [region === EAST ? WEST : EAST]: { endpoint: `http://127.0.0.1:${ports[region === EAST ? WEST : EAST]}`, credentials: ADMIN },
        },
      });
    started.push(await regional(EAST), await regional(WEST));
    const w = new KMSClient({ endpoint: `http://127.0.0.1:${ports[WEST]}`, region: WEST, credentials: ADMIN, maxAttempts: 1 });
    const ePort = new KMSClient({ endpoint: `http://127.0.0.1:${ports[EAST]}`, region: EAST, credentials: ADMIN, maxAttempts: 1 });
    clients.push(w, ePort);
    try {
      const id = (await ePort.send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!.KeyId!;
      await ePort.send(new ReplicateKeyCommand({ KeyId: id, ReplicaRegion: WEST }));
      await ePort.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 90 }));
      clock.advance(91 * DAY);
      // The next request on the primary runs the sweep, which rotates and pushes.
      const blob = (await ePort.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('auto') }))).CiphertextBlob!;
      expect(Buffer.from(blob).readUInt32BE(18)).toBe(2);
      expect(Buffer.from((await w.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext!).toString()).toBe('auto');
      // The replica, past the same date, does not rotate on its own: its newest version stays the primary's.
      const fromWest = (await w.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('w') }))).CiphertextBlob!;
      expect(Buffer.from(fromWest).readUInt32BE(18)).toBe(2);
    } finally {
      for (const s of started) await s.close();
    }
  });
});
