import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { CorruptDataError, WrongKeyError } from '../../src/errors.js';
import { registerKmsCommands } from '../../src/cli/commands/kms.js';
import { findAesKeys } from '../../src/pkcs11/aes.js';
import { Pkcs11Token } from '../../src/pkcs11/token.js';
import { LocalRootKeyFile } from '../../src/kms/root-key.js';
import { Pkcs11RootKey, startKeyService, type KeyServiceConfig, type RunningKeyService } from '../../src/kms/index.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';

const REGION = 'us-east-1';
const ADMIN = { accessKeyId: 'AKIAPKCS11ROOT001', secretAccessKey: 'pkcs11-root-secret-0123456789' };
const CONFIG: KeyServiceConfig = {
  region: REGION,
  accountId: '111122223333',
  principals: [{ name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] }],
};

describeSoftHsm('key service with its root key in a PKCS#11 token', () => {
  let hsm: SoftHsm;
  let dir: string;
  const clients: KMSClient[] = [];
  const client = (service: RunningKeyService) => {
    const c = new KMSClient({ endpoint: service.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    hsm = createSoftHsm(['kms-root', 'kms-root-other']);
    dir = await mkdtemp(join(tmpdir(), 'vs-kms-pkcs11-'));
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    hsm?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves its keys after a stop and a restart, with no root key file and the root key on the token', async () => {
    const t = hsm.tokens['kms-root']!;
    const dataDir = join(dir, 'restart');
    const rootPkcs11 = { module: hsm.module, token: t.label, pinEnv: t.pinEnv, keyLabel: 'kms-root' };

    let service = await startKeyService({ port: 0, dataDir, config: CONFIG, rootPkcs11 });
    const first = client(service);
    const keyId = (await first.send(new CreateKeyCommand({ Description: 'tenant' }))).KeyMetadata!.KeyId!;
    const context = { 'vectorseal:collection': 'docs' };
    const secret = Buffer.from('a DEK-sized secret, 32 bytes....');
    const sealed = (await first.send(new EncryptCommand({ KeyId: keyId, Plaintext: secret, EncryptionContext: context }))).CiphertextBlob!;
    const dataKey = await first.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    await service.close();

    // Nothing root-key-like on disk, and the stored state never holds the data key.
    expect(existsSync(join(dataDir, 'root.key'))).toBe(false);
    for (const name of await readdir(dataDir)) {
      const bytes = await readFile(join(dataDir, name));
      expect(bytes.includes(Buffer.from(dataKey.Plaintext!))).toBe(false);
      expect(bytes.includes(secret)).toBe(false);
    }

    service = await startKeyService({ port: 0, dataDir, config: CONFIG, rootPkcs11 });
    try {
      const again = client(service);
      const opened = await again.send(new DecryptCommand({ CiphertextBlob: sealed, KeyId: keyId, EncryptionContext: context }));
      expect(Buffer.from(opened.Plaintext!).equals(secret)).toBe(true);
      const dk = await again.send(new DecryptCommand({ CiphertextBlob: dataKey.CiphertextBlob!, EncryptionContext: context }));
      expect(Buffer.from(dk.Plaintext!).equals(Buffer.from(dataKey.Plaintext!))).toBe(true);
    } finally {
      await service.close();
    }

    // The root key is a non-extractable token object.
    const token = await Pkcs11Token.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    try {
      await token.withSession((s) => {
        const [root] = findAesKeys(token, s, (l) => l === 'kms-root', 'kms-root');
        expect(root).toBeDefined();
        const [extractable, sensitive] = token.p11.C_GetAttributeValue(s, root!.handle, [
          { type: token.lib.CKA_EXTRACTABLE },
          { type: token.lib.CKA_SENSITIVE },
        ]);
        expect(extractable!.value[0]).toBe(0);
        expect(sensitive!.value[0]).toBe(1);
      });
    } finally {
      await token.close();
    }

    // Started with a file root on the same data directory, the service cannot open the keys.
    service = await startKeyService({ port: 0, dataDir, config: CONFIG });
    try {
      await expect(
        client(service).send(new DecryptCommand({ CiphertextBlob: sealed, KeyId: keyId, EncryptionContext: context })),
      ).rejects.toThrow();
    } finally {
      await service.close();
    }
  });

  it('the root key protector tells another root key, a file root and a damaged blob apart', async () => {
    const a = hsm.tokens['kms-root']!;
    const b = hsm.tokens['kms-root-other']!;
    const root = await Pkcs11RootKey.open({ module: hsm.module, token: a.label, pinEnv: a.pinEnv, keyLabel: 'protector' });
    const other = await Pkcs11RootKey.open({ module: hsm.module, token: b.label, pinEnv: b.pinEnv, keyLabel: 'protector' });
    const file = await LocalRootKeyFile.open(join(dir, 'file-root', 'root.key'));
    try {
      const aad = Buffer.from('key-1/v1');
      const material = Buffer.alloc(2000, 5); // large enough for an import private key
      const blob = await root.wrap(material, aad);
      expect(Buffer.from(await root.unwrap(blob, aad)).equals(material)).toBe(true);
      await expect(root.unwrap(blob, Buffer.from('key-1/v2'))).rejects.toBeInstanceOf(CorruptDataError);
      const flipped = Buffer.from(blob);
      flipped[flipped.length - 1]! ^= 1;
      await expect(root.unwrap(flipped, aad)).rejects.toBeInstanceOf(CorruptDataError);
      await expect(other.unwrap(blob, aad)).rejects.toBeInstanceOf(WrongKeyError);
      await expect(root.unwrap(await file.wrap(material, aad), aad)).rejects.toBeInstanceOf(WrongKeyError);
      expect(root.describe()).toMatchObject({ token: a.label, keyLabel: 'protector' });
    } finally {
      await root.close();
      await other.close();
    }
  });

  it('`vectorseal kms serve --root pkcs11` serves with the root key in the token', async () => {
    const t = hsm.tokens['kms-root']!;
    const configFile = join(dir, 'kms.json');
    await writeFile(configFile, JSON.stringify(CONFIG), { mode: 0o600 });
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const handlers = new Map<string, () => void>();
    vi.spyOn(process, 'once').mockImplementation(((event: string, fn: () => void) => {
      handlers.set(event, fn);
      return process;
    }) as typeof process.once);
    const exited = new Promise<number>((resolve) => {
      vi.spyOn(process, 'exit').mockImplementation(((code?: number) => resolve(code ?? 0)) as typeof process.exit);
    });
    try {
      const program = new Command().exitOverride();
      registerKmsCommands(program);
      // The PIN comes from the environment; it is never a command-line argument.
      await program.parseAsync([
        'node',
        'vectorseal',
        'kms',
        'serve',
        '--port',
        '0',
        '--data-dir',
        join(dir, 'cli'),
        '--config',
        configFile,
        '--root',
        'pkcs11',
        '--pkcs11-module',
        hsm.module,
        '--token',
        t.label,
        '--pin-env',
        t.pinEnv,
        '--key-label',
        'cli-root',
        '--create-root',
      ]);
      const url = /listening on (\S+)/.exec(stderr.join(''))?.[1];
      expect(url).toBeDefined();
      const c = new KMSClient({ endpoint: url!, region: REGION, credentials: ADMIN, maxAttempts: 1 });
      clients.push(c);
      const keyId = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const sealed = (await c.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('hello') }))).CiphertextBlob!;
      expect(Buffer.from((await c.send(new DecryptCommand({ CiphertextBlob: sealed }))).Plaintext!).toString()).toBe('hello');
      expect(stderr.join('')).not.toContain(t.pin);
      handlers.get('SIGTERM')!();
      expect(await exited).toBe(0);
      expect(existsSync(join(dir, 'cli', 'root.key'))).toBe(false);
    } finally {
      vi.restoreAllMocks();
    }
  });
});
