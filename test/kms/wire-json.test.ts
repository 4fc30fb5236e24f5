import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyStore } from '../../src/kms/file-key-store.js';
import { KeyService } from '../../src/kms/key-service.js';
import { LocalRootKeyFile } from '../../src/kms/root-key.js';
import { systemClock } from '../../src/kms/clock.js';
import { answerJson, type WireInput } from '../../src/kms/wire.js';

/**
 * The crypto operations write their answer's JSON text themselves; it must be
 * exactly what JSON.stringify writes for the answer object, and a copy of the
 * answer (which may differ) must not carry it.
 */
describe('precomputed answer JSON', () => {
  let dir: string;
  let store: FileKeyStore;
  let service: KeyService;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vs-kms-json-'));
    store = await FileKeyStore.open(dir, await LocalRootKeyFile.open(join(dir, 'root.key'), { create: true }));
    service = new KeyService(store, 'us-east-1', '111122223333', systemClock);
  });
  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('GenerateDataKey(WithoutPlaintext), Encrypt and Decrypt answer JSON.stringify of their answers', async () => {
    const created = (await service.execute('CreateKey', {})).KeyMetadata as { KeyId: string };
    const multi = (await service.execute('CreateKey', { MultiRegion: true })).KeyMetadata as { KeyId: string };
    const context = { 'vectorseal:store': 'caf\u00e9 "quoted"', __proto__: 'x', '1': 'one' };
    for (const KeyId of [created.KeyId, multi.KeyId]) {
      const answers: WireInput[] = [];
      for (const bytes of [{ KeySpec: 'AES_256' }, { KeySpec: 'AES_128' }, { NumberOfBytes: 7 }]) {
        answers.push(await service.execute('GenerateDataKey', { KeyId, EncryptionContext: context, ...bytes }));
        answers.push(await service.execute('GenerateDataKeyWithoutPlaintext', { KeyId, ...bytes }));
      }
      const encrypted = await service.execute('Encrypt', { KeyId, Plaintext: Buffer.from('hello').toString('base64') });
      answers.push(encrypted);
      answers.push(await service.execute('Decrypt', { CiphertextBlob: encrypted.CiphertextBlob }));
      answers.push(await service.execute('Decrypt', { KeyId, CiphertextBlob: answers[0]!.CiphertextBlob, EncryptionContext: context }));
      for (const a of answers) {
        expect(answerJson(a)).toBe(JSON.stringify(a));
        const copy = { ...a, KeyId: 'changed' };
        expect(answerJson(copy)).toBe(JSON.stringify(copy));
      }
    }
  });

  it('answers without precomputed text go through JSON.stringify', async () => {
    const listed = await service.execute('ListKeys', {});
    expect(answerJson(listed)).toBe(JSON.stringify(listed));
  });
});
