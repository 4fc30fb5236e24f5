import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  ScheduleKeyDeletionCommand,
  CancelKeyDeletionCommand,
} from '@aws-sdk/client-kms';
import {
  AccessDeniedError,
  CorruptDataError,
  KeyDisabledError,
  KeyPendingDeletionError,
  KeyProviderUnavailableError,
  NotFoundError,
  WrongKeyError,
} from '../../src/errors.js';
import { AwsKmsKekProvider } from '../../src/keys/aws-kms.js';
import type { KmsClientLike } from '../../src/keys/aws-kms-client.js';
import type { DekContext } from '../../src/keys/context.js';
import { ADMIN, REGION, TENANT_A, startHarness, type Harness } from './helpers.js';

let h: Harness;
let keyA: string;
let keyB: string;
const ctx: DekContext = { storeId: 'store-1', collectionId: 'tenant-a-docs', dekVersion: 1 };

beforeAll(async () => {
  h = await startHarness();
  const kms = h.client();
  keyA = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  keyB = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/tenant-a', TargetKeyId: keyA }));
});
afterAll(async () => h.cleanup());

function provider(keyId: string, credentials = ADMIN): AwsKmsKekProvider {
  return new AwsKmsKekProvider({ keyId, endpoint: h.service.url, region: REGION, credentials, maxAttempts: 2, retryBaseDelayMs: 5 });
}

describe('aws-kms provider against the key service', () => {
  it('generates, unwraps, wraps and describes', async () => {
    const p = provider('alias/tenant-a');
    const { plaintext, wrapped } = await p.generateDataKey(ctx);
    expect(plaintext).toHaveLength(32);
    expect(wrapped).toMatchObject({ provider: 'aws-kms', keyId: keyA, kekVersion: 'v1' });
    expect(Buffer.from(await p.unwrap(wrapped, ctx)).equals(Buffer.from(plaintext))).toBe(true);
    const again = await p.wrap(plaintext, { ...ctx, dekVersion: 2 });
    expect(Buffer.from(await p.unwrap(again, { ...ctx, dekVersion: 2 })).equals(Buffer.from(plaintext))).toBe(true);
    const d = await p.describe();
    expect(d).toMatchObject({ provider: 'aws-kms', keyId: 'alias/tenant-a', state: 'enabled', currentVersion: 'v1', versions: ['v1'] });
    expect(d.details?.arn).toBe(keyA);
    expect(p.isCurrent(wrapped, d)).toBe(true);
    await p.close();
  });

  it('binds the context: a wrapped DEK fails under another collection, store or version', async () => {
    const p = provider(keyA);
    const { wrapped } = await p.generateDataKey(ctx);
    for (const other of [
      { ...ctx, collectionId: 'tenant-b-docs' },
      { ...ctx, storeId: 'store-2' },
      { ...ctx, dekVersion: 2 },
    ]) {
      await expect(p.unwrap(wrapped, other)).rejects.toBeInstanceOf(CorruptDataError);
    }
    await p.close();
  });

  it('a wrap made under another key is WrongKeyError (Decrypt always names the key)', async () => {
    const pa = provider(keyA);
    const { wrapped } = await pa.generateDataKey(ctx);
    await expect(pa.unwrap({ ...wrapped, keyId: keyB }, ctx)).rejects.toBeInstanceOf(WrongKeyError);
    await pa.close();
  });

  it('rotate() adds a backing version; rewrap uses ReEncrypt to the newest version, old wraps still open', async () => {
    const kms = h.client();
    const arn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const p = provider(arn);
    const { plaintext, wrapped } = await p.generateDataKey(ctx);
    const rotated = await p.rotate();
    expect(rotated.currentVersion).toBe('v2');
    expect(rotated.versions).toEqual(['v1', 'v2']);
    expect(p.isCurrent(wrapped, rotated)).toBe(false);
    const rewrapped = await p.rewrap(wrapped, ctx);
    expect(rewrapped.kekVersion).toBe('v2');
    expect(p.isCurrent(rewrapped, rotated)).toBe(true);
    expect(Buffer.from(rewrapped.blob).readUInt32BE(18)).toBe(2);
    expect(Buffer.from(await p.unwrap(rewrapped, ctx)).equals(Buffer.from(plaintext))).toBe(true);
    expect(Buffer.from(await p.unwrap(wrapped, ctx)).equals(Buffer.from(plaintext))).toBe(true);
    // Rewrap to a new KEK id.
    const moved = await provider(keyB).rewrap(wrapped, ctx);
    expect(moved.keyId).toBe(keyB);
    expect(Buffer.from(await provider(keyB).unwrap(moved, ctx)).equals(Buffer.from(plaintext))).toBe(true);
    await p.close();
  });

  it('maps key states to typed errors', async () => {
    const kms = h.client();
    const arn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const p = provider(arn);
    const { wrapped } = await p.generateDataKey(ctx);
    await kms.send(new DisableKeyCommand({ KeyId: arn }));
    const disabled = await p.unwrap(wrapped, ctx).catch((e: unknown) => e);
    expect(disabled).toBeInstanceOf(KeyDisabledError);
    expect((disabled as Error).cause).toBeDefined();
    expect((await p.describe()).state).toBe('disabled');
    await kms.send(new EnableKeyCommand({ KeyId: arn }));
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: arn, PendingWindowInDays: 7 }));
    await expect(p.unwrap(wrapped, ctx)).rejects.toBeInstanceOf(KeyPendingDeletionError);
    expect((await p.describe()).state).toBe('pending-deletion');
    await kms.send(new CancelKeyDeletionCommand({ KeyId: arn }));
    await expect(provider('alias/missing').describe()).rejects.toBeInstanceOf(NotFoundError);
    await p.close();
  });

  it('maps policy denials to AccessDeniedError', async () => {
    const tenant = provider('alias/tenant-a', TENANT_A);
    await expect(tenant.generateDataKey({ ...ctx, collectionId: 'tenant-b-docs' })).rejects.toBeInstanceOf(AccessDeniedError);
    const wrong = provider(keyA, { accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'definitely-the-wrong-secret' });
    await expect(wrong.generateDataKey(ctx)).rejects.toBeInstanceOf(AccessDeniedError);
  });

  it('retries network faults, then fails with KeyProviderUnavailableError', async () => {
    const p = new AwsKmsKekProvider({
      keyId: keyA,
      endpoint: 'http://127.0.0.1:9',
      region: REGION,
      credentials: ADMIN,
      maxAttempts: 2,
      retryBaseDelayMs: 1,
    });
    const err = await p.unwrap({ provider: 'aws-kms', keyId: keyA, blob: new Uint8Array(80) }, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyProviderUnavailableError);
    expect((err as Error).cause).toBeDefined();
    await p.close();
  });
});

describe('aws-kms provider with an injected client', () => {
  it('retries throttling with backoff and succeeds; passes the encryption context on every call', async () => {
    const seen: unknown[] = [];
    let failures = 2;
    const fake: Partial<KmsClientLike> = {
      async decrypt(input) {
        seen.push(input);
        if (failures-- > 0)
          throw Object.assign(new Error('slow down'), {
            name: 'ThrottlingException',
            $fault: 'client',
            $metadata: { httpStatusCode: 400 },
          });
        return { Plaintext: new Uint8Array(32).fill(7), KeyId: keyA };
      },
    };
    const p = new AwsKmsKekProvider({ keyId: keyA, client: fake as KmsClientLike, maxAttempts: 3, retryBaseDelayMs: 1 });
    const dek = await p.unwrap({ provider: 'aws-kms', keyId: keyA, blob: new Uint8Array(10) }, ctx);
    expect(dek[0]).toBe(7);
    expect(seen).toHaveLength(3);
    expect(seen[0]).toMatchObject({
      KeyId: keyA,
      EncryptionContext: { 'vectorseal:store': 'store-1', 'vectorseal:collection': 'tenant-a-docs', 'vectorseal:dek-version': '1' },
    });
  });

  it('gives up after maxAttempts with KeyProviderUnavailableError keeping the cause', async () => {
    const throttled = Object.assign(new Error('slow down'), {
      name: 'ThrottlingException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    const fake: Partial<KmsClientLike> = {
      async decrypt() {
        throw throttled;
      },
    };
    const p = new AwsKmsKekProvider({ keyId: keyA, client: fake as KmsClientLike, maxAttempts: 2, retryBaseDelayMs: 1 });
    const err = await p.unwrap({ provider: 'aws-kms', keyId: keyA, blob: new Uint8Array(10) }, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyProviderUnavailableError);
    expect((err as Error).cause).toBe(throttled);
  });
});
