import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccessDeniedError } from '../../src/errors.js';
import { fingerprintDataFiles } from '../../src/cli/data-files.js';
import { KEYRING_FILE } from '../../src/keys/key-manager.js';
import { Pkcs11KekProvider, pkcs11KeyringConfig, pkcs11ProviderFactory } from '../../src/keys/pkcs11.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { randomVectors } from '../store/helpers.js';
import { claimedRing } from '../helpers/keyring.js';

describeSoftHsm('the vector store on the pkcs11 provider', () => {
  let hsm: SoftHsm;
  let root: string;
  const stagingDir = join('/dev/shm', `vs-pkcs11-${process.pid}`);

  beforeAll(async () => {
    hsm = createSoftHsm(['store']);
    root = await mkdtemp(join(tmpdir(), 'vs-pkcs11-store-'));
  });
  afterAll(async () => {
    hsm?.cleanup();
    await rm(root, { recursive: true, force: true });
    await rm(stagingDir, { recursive: true, force: true });
  });

  it('writes, flushes, reopens and rotates the KEK in the token, with data files unchanged by rotation', async () => {
    const t = hsm.tokens['store']!;
    const pkcs11 = { module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'store-kek' };
    await (await Pkcs11KekProvider.init(pkcs11)).close();
    const dir = join(root, 'data');
    const open = (pin?: string): Promise<Store> =>
      openStore({
        dir,
        create: true,
        stagingDir,
        keys: { provider: 'pkcs11', keyId: pkcs11.keyLabel, config: pkcs11KeyringConfig(pkcs11) },
        providers: { pkcs11: pkcs11ProviderFactory(pin === undefined ? {} : { pin }) },
      });

    const vecs = randomVectors(120, 8, 3);
    let store = await open();
    const docs = await store.createCollection('docs', { dim: 8 });
    await docs.upsert(vecs.slice(0, 100).map((v, i) => ({ id: `d${i}`, vector: v, metadata: { secret: `meta-${i}` } })));
    await docs.flush();
    await docs.upsert(vecs.slice(100).map((v, i) => ({ id: `d${100 + i}`, vector: v })));
    const expected = docs.search(vecs[7]!, 5);
    await store.close();

    // The keyring binds the KEK (provider, key label) and names neither the module nor the PIN: both are the caller's.
    const keyring = await readFile(join(dir, KEYRING_FILE), 'utf8');
    expect((await claimedRing(dir)).keks['default']).toMatchObject({ provider: 'pkcs11', keyId: 'store-kek' });
    expect(keyring).not.toContain(t.pin);
    expect(keyring).not.toContain(hsm.module);

    store = await open();
    expect(store.collection('docs').count).toBe(120);
    expect(store.collection('docs').search(vecs[7]!, 5)).toEqual(expected);
    await store.flush();
    const before = await fingerprintDataFiles(dir);

    const report = await store.rotateKek();
    expect(report.fromVersion).toBe('1');
    expect(report.toVersion).toBe('2');
    expect(report.rewrapped).toBeGreaterThan(0);
    await store.close();

    expect(await fingerprintDataFiles(dir)).toEqual(before);
    const wraps = JSON.stringify((await claimedRing(dir)).collections);
    expect(wraps).toContain('"kekVersion":"2"');
    expect(wraps).not.toContain('"kekVersion":"1"');

    // After rotation the old version can go: the store opens on v2 alone.
    const kek = await Pkcs11KekProvider.open(pkcs11);
    await kek.destroyVersion(1);
    expect((await kek.describe()).versions).toEqual(['2']);
    await kek.close();

    store = await open();
    expect(store.collection('docs').get('d3')?.metadata).toEqual({ secret: 'meta-3' });
    expect(store.collection('docs').search(vecs[7]!, 5)).toEqual(expected);
    await store.close();

    // A wrong PIN cannot open the store's keys.
    await expect(open(`${t.pin}-wrong`)).rejects.toBeInstanceOf(AccessDeniedError);
  });
});
