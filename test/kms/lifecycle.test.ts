import { afterEach, describe, expect, it } from 'vitest';
import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyRotationCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  GetKeyRotationStatusCommand,
  GetParametersForImportCommand,
  ImportKeyMaterialCommand,
  ListAliasesCommand,
  ListKeyRotationsCommand,
  ListKeysCommand,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { DAY, manualClock, startHarness, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).name;
  }
  return 'no error';
}

async function newKey(kms: KMSClient, origin?: 'EXTERNAL'): Promise<string> {
  return (await kms.send(new CreateKeyCommand(origin ? { Origin: origin } : {}))).KeyMetadata!.KeyId!;
}

describe('rotation', () => {
  it('on-demand rotation keeps old ciphertexts readable and ReEncrypt moves them to the newest backing key', async () => {
    h = await startHarness();
    const kms = h.client();
    const id = await newKey(kms);
    const ctx = { c: 'docs' };
    const old = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('v1 data'), EncryptionContext: ctx }));
    expect((await kms.send(new RotateKeyOnDemandCommand({ KeyId: id }))).KeyId).toBe(id);
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: id }));
    const fresh = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('v3 data'), EncryptionContext: ctx }));
    // The blob header names the backing version (bytes 17..20).
    expect(Buffer.from(old.CiphertextBlob!).readUInt32BE(18)).toBe(1);
    expect(Buffer.from(fresh.CiphertextBlob!).readUInt32BE(18)).toBe(3);
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: old.CiphertextBlob, EncryptionContext: ctx }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('v1 data');
    const re = await kms.send(
      new ReEncryptCommand({
        CiphertextBlob: old.CiphertextBlob,
        SourceEncryptionContext: ctx,
        DestinationKeyId: id,
        DestinationEncryptionContext: ctx,
      }),
    );
    expect(Buffer.from(re.CiphertextBlob!).readUInt32BE(18)).toBe(3);
    const rotations = await kms.send(new ListKeyRotationsCommand({ KeyId: id }));
    expect(rotations.Rotations!.map((r) => r.RotationType)).toEqual(['ON_DEMAND', 'ON_DEMAND']);
    expect(rotations.Rotations![0]!.RotationDate).toBeInstanceOf(Date);
    const page = await kms.send(new ListKeyRotationsCommand({ KeyId: id, Limit: 1 }));
    expect(page.Truncated).toBe(true);
    const next = await kms.send(new ListKeyRotationsCommand({ KeyId: id, Marker: page.NextMarker! }));
    expect(next.Rotations).toHaveLength(1);
  });

  it('automatic rotation happens when due on the injected clock', async () => {
    const clock = manualClock();
    h = await startHarness({ clock });
    const kms = h.client();
    const id = await newKey(kms);
    expect(await errorName(kms.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 30 })))).toBe('ValidationException');
    await kms.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 90 }));
    const status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: id }));
    expect(status.KeyRotationEnabled).toBe(true);
    expect(status.RotationPeriodInDays).toBe(90);
    expect(Math.round((status.NextRotationDate!.getTime() - clock.now()) / DAY)).toBe(90);
    const before = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('before') }));
    clock.advance(91 * DAY);
    const after = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('after') }));
    expect(Buffer.from(after.CiphertextBlob!).readUInt32BE(18)).toBe(2);
    expect(Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: before.CiphertextBlob }))).Plaintext!).toString()).toBe(
      'before',
    );
    const rotations = await kms.send(new ListKeyRotationsCommand({ KeyId: id }));
    expect(rotations.Rotations!.map((r) => r.RotationType)).toEqual(['AUTOMATIC']);
    await kms.send(new DisableKeyRotationCommand({ KeyId: id }));
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: id }))).KeyRotationEnabled).toBe(false);
    const defaulted = await newKey(kms);
    await kms.send(new EnableKeyRotationCommand({ KeyId: defaulted }));
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: defaulted }))).RotationPeriodInDays).toBe(365);
  });
});

describe('scheduled deletion', () => {
  it('completes after the window: material removed, key gone with NotFoundException, aliases removed', async () => {
    const clock = manualClock();
    h = await startHarness({ clock });
    const kms = h.client();
    const id = await newKey(kms);
    const keep = await newKey(kms);
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/doomed', TargetKeyId: id }));
    const enc = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('bye') }));
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: id, PendingWindowInDays: 7 }));
    clock.advance(6 * DAY);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyState).toBe('PendingDeletion');
    clock.advance(1 * DAY + 1000);
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: id })))).toBe('NotFoundException');
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob })))).toBe('NotFoundException');
    expect(await errorName(kms.send(new CancelKeyDeletionCommand({ KeyId: id })))).toBe('NotFoundException');
    const keys = (await kms.send(new ListKeysCommand({}))).Keys!.map((k) => k.KeyId);
    expect(keys).toEqual([keep]);
    expect((await kms.send(new ListAliasesCommand({}))).Aliases).toEqual([]);
    const state = await readFile(join(h.dataDir, 'kms-state.json'), 'utf8');
    expect(state).not.toContain(id);
  });

  it('the timer completes a deletion without any request', async () => {
    const clock = manualClock();
    h = await startHarness({ clock, sweepIntervalMs: 20 });
    const kms = h.client();
    const id = await newKey(kms);
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: id, PendingWindowInDays: 7 }));
    clock.advance(8 * DAY);
    await new Promise((r) => setTimeout(r, 200));
    const state = await readFile(join(h.dataDir, 'kms-state.json'), 'utf8');
    expect(state).not.toContain(id);
  });
});

describe('restart', () => {
  it('keeps keys, aliases, rotation state, schedules and old ciphertexts', async () => {
    h = await startHarness();
    let kms = h.client();
    const id = await newKey(kms);
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/durable', TargetKeyId: id }));
    const enc = await kms.send(new EncryptCommand({ KeyId: 'alias/durable', Plaintext: Buffer.from('persist me') }));
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: id }));
    await kms.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 100 }));
    const doomed = await newKey(kms);
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: doomed, PendingWindowInDays: 10 }));
    await h.restart();
    kms = h.client();
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: 'alias/durable' }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('persist me');
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: id }))).RotationPeriodInDays).toBe(100);
    expect((await kms.send(new ListKeyRotationsCommand({ KeyId: id }))).Rotations).toHaveLength(1);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: doomed }))).KeyMetadata!.KeyState).toBe('PendingDeletion');
    // Nothing secret is stored in the clear: the state file holds only wrapped material.
    const state = await readFile(join(h.dataDir, 'kms-state.json'), 'utf8');
    expect(state).not.toContain(Buffer.from('persist me').toString('base64'));
  });
});

describe('bring your own key', () => {
  it('imports RSA-OAEP-SHA-256 wrapped material; the key then works and survives restart', async () => {
    h = await startHarness();
    const kms = h.client();
    const id = await newKey(kms, 'EXTERNAL');
    const meta = (await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!;
    expect(meta).toMatchObject({ KeyState: 'PendingImport', Origin: 'EXTERNAL', Enabled: false });
    expect(await errorName(kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') })))).toBe('KMSInvalidStateException');
    expect(await errorName(kms.send(new RotateKeyOnDemandCommand({ KeyId: id })))).toBe('UnsupportedOperationException');

    const params = await kms.send(
      new GetParametersForImportCommand({ KeyId: id, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }),
    );
    expect(params.ParametersValidTo!.getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
    const publicKey = createPublicKey({ key: Buffer.from(params.PublicKey!), format: 'der', type: 'spki' });
    const material = randomBytes(32);
    const wrap = (m: Buffer) => publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, m);

    expect(
      await errorName(
        kms.send(
          new ImportKeyMaterialCommand({
            KeyId: id,
            ImportToken: params.ImportToken,
            EncryptedKeyMaterial: wrap(randomBytes(16)),
            ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
          }),
        ),
      ),
    ).toBe('ValidationException');
    const otherExternal = await newKey(kms, 'EXTERNAL');
    expect(
      await errorName(
        kms.send(
          new ImportKeyMaterialCommand({
            KeyId: otherExternal,
            ImportToken: params.ImportToken,
            EncryptedKeyMaterial: wrap(material),
            ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
          }),
        ),
      ),
    ).toBe('InvalidImportTokenException');

    await kms.send(
      new ImportKeyMaterialCommand({
        KeyId: id,
        ImportToken: params.ImportToken,
        EncryptedKeyMaterial: wrap(material),
        ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
      }),
    );
    const after = (await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!;
    expect(after).toMatchObject({ KeyState: 'Enabled', ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' });
    const enc = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('byok'), EncryptionContext: { t: 'a' } }));
    // A token is single use.
    expect(
      await errorName(
        kms.send(
          new ImportKeyMaterialCommand({
            KeyId: id,
            ImportToken: params.ImportToken,
            EncryptedKeyMaterial: wrap(material),
            ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
          }),
        ),
      ),
    ).toBe('InvalidImportTokenException');
    // Re-import must bring the same material.
    const again = await kms.send(
      new GetParametersForImportCommand({ KeyId: id, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }),
    );
    const pk2 = createPublicKey({ key: Buffer.from(again.PublicKey!), format: 'der', type: 'spki' });
    const wrongMaterial = publicEncrypt({ key: pk2, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, randomBytes(32));
    expect(
      await errorName(
        kms.send(
          new ImportKeyMaterialCommand({
            KeyId: id,
            ImportToken: again.ImportToken,
            EncryptedKeyMaterial: wrongMaterial,
            ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
          }),
        ),
      ),
    ).toBe('IncorrectKeyMaterialException');

    await h.restart();
    const kms2 = h.client();
    const d = await kms2.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { t: 'a' } }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('byok');
  });

  it('import tokens expire after 24 hours; non-EXTERNAL keys refuse import', async () => {
    const clock = manualClock();
    h = await startHarness({ clock });
    const kms = h.client();
    const id = await newKey(kms, 'EXTERNAL');
    const params = await kms.send(
      new GetParametersForImportCommand({ KeyId: id, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }),
    );
    clock.advance(DAY + 1000);
    const pk = createPublicKey({ key: Buffer.from(params.PublicKey!), format: 'der', type: 'spki' });
    const wrapped = publicEncrypt({ key: pk, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, randomBytes(32));
    expect(
      await errorName(
        kms.send(
          new ImportKeyMaterialCommand({
            KeyId: id,
            ImportToken: params.ImportToken,
            EncryptedKeyMaterial: wrapped,
            ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
          }),
        ),
      ),
    ).toBe('ExpiredImportTokenException');
    const normal = await newKey(kms);
    expect(
      await errorName(
        kms.send(
          new GetParametersForImportCommand({ KeyId: normal, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }),
        ),
      ),
    ).toBe('UnsupportedOperationException');
    expect(
      await errorName(
        kms.send(new GetParametersForImportCommand({ KeyId: id, WrappingAlgorithm: 'RSAES_PKCS1_V1_5', WrappingKeySpec: 'RSA_2048' })),
      ),
    ).toBe('UnsupportedOperationException');
  });
});
