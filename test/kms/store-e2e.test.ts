import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyDisabledError } from '../../src/errors.js';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import { fingerprintDataFiles } from '../../src/cli/data-files.js';
import { openStore, type Store } from '../../src/store/index.js';
import { CLI_BIN, cliJson, runCli } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';
import { randomVectors } from '../store/helpers.js';
import { ADMIN, REGION, startHarness, type Harness } from './helpers.js';

describe('the vector store on the aws-kms provider, against the key service', () => {
  let kms: Harness;

  beforeAll(async () => {
    kms = await startHarness();
  });
  afterAll(async () => {
    await kms?.cleanup();
  });

  it('creates, writes, flushes, reopens, rotates by ReEncrypt, and stops when the key is disabled', async () => {
    const client = kms.client();
    const key = await client.send(new CreateKeyCommand({ Description: 'store KEK' }));
    const arn = key.KeyMetadata?.Arn as string;
    const d = storeDirs();
    const providers = {
      'aws-kms': (e: { keyId: string }) =>
        new AwsKmsKekProvider({ keyId: e.keyId, endpoint: kms.service.url, region: REGION, credentials: ADMIN }),
    };
    const open = (): Promise<Store> =>
      openStore({
        dir: d.dir,
        create: true,
        stagingDir: d.stagingDir,
        keys: { provider: 'aws-kms', keyId: arn, config: { endpoint: kms.service.url, region: REGION } },
        providers,
      });

    const vectors = randomVectors(300, 16, 11);
    let store = await open();
    const docs = await store.createCollection('docs', { dim: 16 });
    await docs.upsert(vectors.map((v, i) => ({ id: `doc-${i}`, vector: v, metadata: { n: i } })));
    await docs.flush();
    const before = docs.search(vectors[7] as Float32Array, 5).map((h) => h.id);
    await store.close();

    store = await open();
    expect(
      store
        .collection('docs')
        .search(vectors[7] as Float32Array, 5)
        .map((h) => h.id),
    ).toEqual(before);
    const files = await fingerprintDataFiles(d.dir);
    const auditBefore = (await fs.readFile(join(kms.dataDir, 'audit.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"ReEncrypt"')).length;
    const report = await store.rotateKek();
    // The collection's DEK and the store's own audit and state keys.
    expect(report).toMatchObject({ fromVersion: 'v1', toVersion: 'v2', rewrapped: 3 });
    expect(await fingerprintDataFiles(d.dir)).toEqual(files);
    const reEncrypts = (await fs.readFile(join(kms.dataDir, 'audit.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"ReEncrypt"')).length;
    // ...and the keyring MAC key: four ReEncrypts.
    expect(reEncrypts - auditBefore).toBe(4);
    await store.close();

    // Disabled in the KMS: once no DEK is cached, opening the data fails with the typed error.
    await client.send(new DisableKeyCommand({ KeyId: arn }));
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyDisabledError);
    expect((err as KeyDisabledError).code).toBe('VS_KEY_DISABLED');

    await client.send(new EnableKeyCommand({ KeyId: arn }));
    store = await open();
    expect(
      store
        .collection('docs')
        .search(vectors[7] as Float32Array, 5)
        .map((h) => h.id),
    ).toEqual(before);
    // A cached DEK goes with the cache: disable, evict, and the next unwrap is refused.
    await client.send(new DisableKeyCommand({ KeyId: arn }));
    store.keys.evict();
    const cid = store.listCollections()[0]?.id as string;
    await expect(store.keys.leaseDek(cid, 1)).rejects.toBeInstanceOf(KeyDisabledError);
    await client.send(new EnableKeyCommand({ KeyId: arn }));
    await store.close();
  });

  it('vectorseal init --kek aws-kms --kms-key --kms-endpoint, then rotate-kek through the same CLI', async () => {
    await fs.access(CLI_BIN); // spawns the built CLI: `npm test` builds first
    const key = await kms.client().send(new CreateKeyCommand({}));
    const d = storeDirs();
    const env = {
      AWS_ACCESS_KEY_ID: ADMIN.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey,
      AWS_REGION: REGION,
      VECTORSEAL_DIR: d.dir,
    };
    const cli = async (...args: string[]) => cliJson(await runCli([...args, '--json'], { env }), args);
    const init = await cli('init', '--kek', 'aws-kms', '--kms-key', key.KeyMetadata?.Arn as string, '--kms-endpoint', kms.service.url);
    expect(init).toMatchObject({ keyProvider: 'aws-kms', keyId: key.KeyMetadata?.Arn, endpoint: kms.service.url });
    await cli('collection', 'create', 'docs', '--dim', '4');
    const rotated = await cli('rotate-kek');
    expect(JSON.stringify(rotated)).toMatch(/"rewrapped":3/); // the collection's DEK, the audit and state keys
    const missing = await runCli(['init', '--kek', 'aws-kms', '--dir', join(d.root, 'other')], { env });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/^error VS_INVALID_ARGUMENT: --kek aws-kms needs --kms-key/);
  });
});
