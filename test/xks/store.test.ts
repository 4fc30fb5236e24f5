import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fingerprintDataFiles } from '../../src/cli/data-files.js';
import { KeyProviderUnavailableError } from '../../src/errors.js';
import { KEYRING_FILE } from '../../src/keys/key-manager.js';
import { xksProviderFactory } from '../../src/keys/xks.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createXksCredential, startXksProxy, XksHsm, type RunningXksProxy, type XksConfig } from '../../src/xks/index.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';
import { randomVectors } from '../store/helpers.js';

/** Hold your own key without a cloud: a store whose KEK is behind vectorseal's own XKS proxy, the key in SoftHSM2. */
describeSoftHsm('the vector store on the xks provider', () => {
  let hsm: SoftHsm;
  let keys: XksHsm;
  let pki: TestPki;
  let root: string;
  const port = 47311;
  const stagingDir = join('/dev/shm', `vs-xks-${process.pid}`);
  const credential = createXksCredential();
  const config: XksConfig = { uriPrefix: '/store/kms/xks/v1', region: 'us-east-1', credentials: [credential] };

  const start = (): Promise<RunningXksProxy> =>
    startXksProxy({ hsm: keys, config, tls: pki.server, port, auditFile: join(root, 'xks-audit.log') });

  beforeAll(async () => {
    hsm = createSoftHsm(['xks-store']);
    pki = createTestPki();
    root = await mkdtemp(join(tmpdir(), 'vs-xks-store-'));
    const t = hsm.tokens['xks-store']!;
    keys = await XksHsm.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    await keys.createKey('tenant-kek.v1', 'encrypt-decrypt');
  });
  afterAll(async () => {
    await keys?.close();
    hsm?.cleanup();
    pki?.cleanup();
    await rm(root, { recursive: true, force: true });
    await rm(stagingDir, { recursive: true, force: true });
  });

  it('writes, flushes, rotates with data files unchanged, fails typed while the proxy is down and works once it is back', async () => {
    let proxy = await start();
    const dir = join(root, 'data');
    const providers = {
      xks: xksProviderFactory({
        endpoint: `https://127.0.0.1:${port}`,
        uriPrefix: config.uriPrefix,
        region: 'us-east-1',
        ...credential,
        ca: pki.ca,
        createVersion: (id) => keys.createKey(id, 'encrypt-decrypt'),
      }),
    };
    // Files a flush retires go at once (no reader here), so the data-file fingerprint covers only live files.
    const open = (): Promise<Store> =>
      openStore({ dir, create: true, stagingDir, keys: { provider: 'xks', keyId: 'tenant-kek' }, providers, retiredFileGraceMs: 0 });

    const vecs = randomVectors(120, 8, 5);
    let store = await open();
    const docs = await store.createCollection('docs', { dim: 8 });
    await docs.upsert(vecs.slice(0, 100).map((v, i) => ({ id: `d${i}`, vector: v, metadata: { secret: `meta-${i}` } })));
    await docs.flush();
    await docs.upsert(vecs.slice(100).map((v, i) => ({ id: `d${100 + i}`, vector: v })));
    const expected = docs.search(vecs[7]!, 5);
    await store.flush();
    const before = await fingerprintDataFiles(dir);

    const report = await store.rotateKek();
    expect(report.fromVersion).toBe('1');
    expect(report.toVersion).toBe('2');
    expect(report.rewrapped).toBeGreaterThan(0);
    await store.close();
    expect(await fingerprintDataFiles(dir)).toEqual(before);
    const keyring = await readFile(join(dir, KEYRING_FILE), 'utf8');
    // The keyring log's newest records carry the rewraps under KEK version 2.
    expect(keyring).toContain('"kekVersion":"2"');
    // The keyring names the KEK, never the proxy's secret.
    expect(keyring).not.toContain(credential.secretAccessKey);

    // The proxy goes away: opening the store needs the KEK, and says the provider is unavailable.
    await proxy.close();
    await expect(open()).rejects.toBeInstanceOf(KeyProviderUnavailableError);

    // Back on the same address: the store opens and reads everything.
    proxy = await start();
    try {
      store = await open();
      expect(store.collection('docs').count).toBe(120);
      expect(store.collection('docs').get('d3')?.metadata).toEqual({ secret: 'meta-3' });
      expect(store.collection('docs').search(vecs[7]!, 5)).toEqual(expected);
      await store.close();
    } finally {
      await proxy.close();
    }
    // Every call the store made is in the proxy's audit log, with the metadata the provider sent.
    const audit = await readFile(join(root, 'xks-audit.log'), 'utf8');
    expect(audit).toContain('"externalKeyId":"tenant-kek.v2"');
    expect(audit).toContain('"kmsOperation":"Decrypt"');
  });
});
