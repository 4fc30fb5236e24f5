import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { Pkcs11KekProvider } from '../../src/keys/pkcs11.js';
import { XksKekProvider } from '../../src/keys/xks.js';
import { startKeyService } from '../../src/kms/index.js';
import { createXksCredential, startXksProxy, XksHsm } from '../../src/xks/index.js';
import { createSoftHsm, describeSoftHsm } from '../helpers/softhsm.js';
import { createTestPki } from '../helpers/tls.js';
import { providerConformance } from './provider-conformance.js';

providerConformance({
  name: 'local',
  async setup() {
    const dirA = await mkdtemp(join(tmpdir(), 'vs-conf-local-'));
    const dirB = await mkdtemp(join(tmpdir(), 'vs-conf-local-'));
    // The same key id in two key directories: only the key check value tells them apart.
    const provider = await LocalKekProvider.init({ keyId: 'kek', keyDir: dirA });
    const other = await LocalKekProvider.init({ keyId: 'kek', keyDir: dirB });
    return {
      provider,
      other,
      disableNotApplicable: 'N/A: a local key file has no disabled state (destroy a version to shred instead)',
      async cleanup() {
        await provider.close();
        await other.close();
        await rm(dirA, { recursive: true, force: true });
        await rm(dirB, { recursive: true, force: true });
      },
    };
  },
});

providerConformance({
  name: 'pkcs11 (SoftHSM2)',
  describe: describeSoftHsm,
  async setup() {
    const hsm = createSoftHsm(['conformance-a', 'conformance-b']);
    const a = hsm.tokens['conformance-a']!;
    const b = hsm.tokens['conformance-b']!;
    // The same key label on two tokens: only the key check value tells them apart.
    const provider = await Pkcs11KekProvider.init({ module: hsm.module, token: a.label, pinEnv: a.pinEnv, keyLabel: 'kek' });
    const other = await Pkcs11KekProvider.init({ module: hsm.module, token: b.label, pinEnv: b.pinEnv, keyLabel: 'kek' });
    return {
      provider,
      other,
      disable: () => provider.disable(),
      enable: () => provider.enable(),
      async cleanup() {
        await provider.close();
        await other.close();
        hsm.cleanup();
      },
    };
  },
});

const REGION = 'us-east-1';
const ADMIN = { accessKeyId: 'AKIACONFORMANCE01', secretAccessKey: 'conformance-secret-0123456789' };

providerConformance({
  name: 'aws-kms (through the key service)',
  async setup() {
    const dataDir = await mkdtemp(join(tmpdir(), 'vs-conf-kms-'));
    const service = await startKeyService({
      port: 0,
      host: '127.0.0.1',
      dataDir,
      config: {
        region: REGION,
        accountId: '111122223333',
        principals: [{ name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] }],
      },
    });
    const admin = new KMSClient({ endpoint: service.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
    const keyA = (await admin.send(new CreateKeyCommand({ Description: 'conformance A' }))).KeyMetadata!.Arn!;
    const keyB = (await admin.send(new CreateKeyCommand({ Description: 'conformance B' }))).KeyMetadata!.Arn!;
    const make = (keyId: string) => new AwsKmsKekProvider({ keyId, endpoint: service.url, region: REGION, credentials: ADMIN });
    const provider = make(keyA);
    const other = make(keyB);
    return {
      provider,
      other,
      wrapNamesItsKey: true,
      disable: async () => void (await admin.send(new DisableKeyCommand({ KeyId: keyA }))),
      enable: async () => void (await admin.send(new EnableKeyCommand({ KeyId: keyA }))),
      async cleanup() {
        await provider.close();
        await other.close();
        admin.destroy();
        await service.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
});

providerConformance({
  name: 'xks (vectorseal xks proxy on SoftHSM2, over HTTPS with SigV4)',
  describe: describeSoftHsm,
  async setup() {
    // The pkcs11 suite above finalized its module when it closed: this SoftHSM directory is the module's next one.
    const hsm = createSoftHsm(['conformance-xks']);
    const t = hsm.tokens['conformance-xks']!;
    const pki = createTestPki();
    const dir = await mkdtemp(join(tmpdir(), 'vs-conf-xks-'));
    const keys = await XksHsm.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    await keys.createKey('conf-a.v1', 'encrypt-decrypt');
    await keys.createKey('conf-b.v1', 'encrypt-decrypt');
    const credential = createXksCredential();
    const proxy = await startXksProxy({
      hsm: keys,
      config: { uriPrefix: '/conformance/kms/xks/v1', region: 'us-east-1', credentials: [credential] },
      tls: pki.server,
      auditFile: join(dir, 'audit.log'),
    });
    const connection = { endpoint: proxy.url, uriPrefix: '/conformance/kms/xks/v1', region: 'us-east-1', ...credential, ca: pki.ca };
    const provider = new XksKekProvider({ ...connection, keyId: 'conf-a', createVersion: (id) => keys.createKey(id, 'encrypt-decrypt') });
    const other = new XksKekProvider({ ...connection, keyId: 'conf-b' });
    const setAll = async (enabled: boolean) => {
      for (const v of (await provider.describe()).versions ?? []) await keys.setKeyEnabled(provider.externalKeyId(Number(v)), enabled);
    };
    return {
      provider,
      other,
      disable: () => setAll(false),
      enable: () => setAll(true),
      async cleanup() {
        await provider.close();
        await other.close();
        await proxy.close();
        await keys.close();
        hsm.cleanup();
        pki.cleanup();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
