import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import { LocalKekProvider } from '../../src/keys/local.js';
import { Pkcs11KekProvider } from '../../src/keys/pkcs11.js';
import { startKeyService } from '../../src/kms/index.js';
import { createSoftHsm, describeSoftHsm } from '../helpers/softhsm.js';
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
      config: { region: REGION, accountId: '111122223333', principals: [{ name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] }] },
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
