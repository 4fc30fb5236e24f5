import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  ListAliasesCommand,
  ListKeysCommand,
  ReEncryptCommand,
  ScheduleKeyDeletionCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { ACCOUNT, REGION, startHarness, type Harness } from './helpers.js';

let h: Harness;
let kms: KMSClient;
beforeAll(async () => {
  h = await startHarness();
  kms = h.client();
});
afterAll(async () => h.cleanup());

async function newKey(description = 'test'): Promise<{ id: string; arn: string }> {
  const out = await kms.send(new CreateKeyCommand({ Description: description, Tags: [{ TagKey: 'team', TagValue: 'search' }] }));
  return { id: out.KeyMetadata!.KeyId!, arn: out.KeyMetadata!.Arn! };
}

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).name;
  }
  return 'no error';
}

describe('keys and aliases', () => {
  it('CreateKey returns metadata with an ARN from the configured region and account', async () => {
    const out = await kms.send(new CreateKeyCommand({ Description: 'primary' }));
    const m = out.KeyMetadata!;
    expect(m.Arn).toBe(`arn:aws:kms:${REGION}:${ACCOUNT}:key/${m.KeyId}`);
    expect(m).toMatchObject({
      KeyState: 'Enabled',
      Enabled: true,
      Origin: 'AWS_KMS',
      KeySpec: 'SYMMETRIC_DEFAULT',
      Description: 'primary',
    });
    expect(m.CreationDate).toBeInstanceOf(Date);
    expect(Math.abs(m.CreationDate!.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('refuses unsupported key specs', async () => {
    expect(await errorName(kms.send(new CreateKeyCommand({ KeySpec: 'RSA_2048' })))).toBe('UnsupportedOperationException');
  });

  it('DescribeKey by id, ARN, alias name and alias ARN', async () => {
    const k = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/describe-me', TargetKeyId: k.id }));
    for (const ref of [k.id, k.arn, 'alias/describe-me', `arn:aws:kms:${REGION}:${ACCOUNT}:alias/describe-me`]) {
      const out = await kms.send(new DescribeKeyCommand({ KeyId: ref }));
      expect(out.KeyMetadata!.Arn).toBe(k.arn);
    }
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/nope' })))).toBe('NotFoundException');
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: '00000000-0000-0000-0000-000000000000' })))).toBe('NotFoundException');
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/${k.id}` })))).toBe(
      'NotFoundException',
    );
  });

  it('CreateAlias errors: duplicate, bad name, missing target', async () => {
    const k = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/dup', TargetKeyId: k.arn }));
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/dup', TargetKeyId: k.id })))).toBe('AlreadyExistsException');
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/reserved', TargetKeyId: k.id })))).toBe(
      'InvalidAliasNameException',
    );
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'noprefix', TargetKeyId: k.id })))).toBe(
      'InvalidAliasNameException',
    );
    expect(
      await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/orphan', TargetKeyId: '11111111-1111-1111-1111-111111111111' }))),
    ).toBe('NotFoundException');
  });

  it('ListKeys and ListAliases page with Limit and Marker', async () => {
    const made = [await newKey(), await newKey(), await newKey()];
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/page-a', TargetKeyId: made[0]!.id }));
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/page-b', TargetKeyId: made[0]!.id }));
    const seen: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const out = await kms.send(new ListKeysCommand({ Limit: 2, ...(marker ? { Marker: marker } : {}) }));
      pages++;
      expect(out.Keys!.length).toBeLessThanOrEqual(2);
      seen.push(...out.Keys!.map((k) => k.KeyId!));
      for (const k of out.Keys!) expect(k.KeyArn).toBe(`arn:aws:kms:${REGION}:${ACCOUNT}:key/${k.KeyId}`);
      marker = out.Truncated ? out.NextMarker : undefined;
    } while (marker);
    expect(pages).toBeGreaterThan(1);
    expect(new Set(seen).size).toBe(seen.length);
    for (const k of made) expect(seen).toContain(k.id);

    const aliases = await kms.send(new ListAliasesCommand({ KeyId: made[0]!.arn, Limit: 1 }));
    expect(aliases.Aliases).toHaveLength(1);
    expect(aliases.Truncated).toBe(true);
    const rest = await kms.send(new ListAliasesCommand({ KeyId: made[0]!.id, Marker: aliases.NextMarker! }));
    expect([aliases.Aliases![0]!.AliasName, ...rest.Aliases!.map((a) => a.AliasName)]).toEqual(['alias/page-a', 'alias/page-b']);
    expect(rest.Aliases![0]!.TargetKeyId).toBe(made[0]!.id);
    expect(rest.Aliases![0]!.AliasArn).toBe(`arn:aws:kms:${REGION}:${ACCOUNT}:alias/page-b`);
    expect(await errorName(kms.send(new ListKeysCommand({ Marker: 'garbage' })))).toBe('InvalidMarkerException');
  });
});

describe('cryptographic operations', () => {
  const ctx = { 'vectorseal:store': 's1', 'vectorseal:collection': 'docs', 'vectorseal:dek-version': '1' };

  it('GenerateDataKey by KeySpec and NumberOfBytes, then Decrypt', async () => {
    const k = await newKey();
    const a = await kms.send(new GenerateDataKeyCommand({ KeyId: k.id, KeySpec: 'AES_256', EncryptionContext: ctx }));
    expect(a.Plaintext).toHaveLength(32);
    expect(a.KeyId).toBe(k.arn);
    const b = await kms.send(new GenerateDataKeyCommand({ KeyId: k.arn, KeySpec: 'AES_128' }));
    expect(b.Plaintext).toHaveLength(16);
    const c = await kms.send(new GenerateDataKeyCommand({ KeyId: k.id, NumberOfBytes: 64 }));
    expect(c.Plaintext).toHaveLength(64);
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: a.CiphertextBlob, EncryptionContext: ctx, KeyId: k.arn }));
    expect(Buffer.from(d.Plaintext!).equals(Buffer.from(a.Plaintext!))).toBe(true);
    expect(d.KeyId).toBe(k.arn);
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: k.id })))).toBe('ValidationException');
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: k.id, KeySpec: 'AES_256', NumberOfBytes: 32 })))).toBe(
      'ValidationException',
    );
  });

  it('GenerateDataKeyWithoutPlaintext returns only a ciphertext that decrypts', async () => {
    const k = await newKey();
    const out = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: k.id, KeySpec: 'AES_256', EncryptionContext: ctx }));
    expect((out as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: out.CiphertextBlob, EncryptionContext: ctx }));
    expect(d.Plaintext).toHaveLength(32);
  });

  it('Encrypt/Decrypt require the exact encryption context', async () => {
    const k = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: Buffer.from('secret dek bytes'), EncryptionContext: ctx }));
    const variants: Record<string, string>[] = [
      {},
      { ...ctx, 'vectorseal:collection': 'other' },
      { ...ctx, extra: 'x' },
      { 'vectorseal:store': 's1', 'vectorseal:collection': 'docs' },
    ];
    for (const v of variants) {
      expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: v })))).toBe(
        'InvalidCiphertextException',
      );
    }
    // Reordered keys are the same context.
    const reordered = { 'vectorseal:dek-version': '1', 'vectorseal:collection': 'docs', 'vectorseal:store': 's1' };
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: reordered }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('secret dek bytes');
  });

  it('context encoding is unambiguous: shifting bytes between key and value fails', async () => {
    const k = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: Buffer.from('x'), EncryptionContext: { ab: 'c' } }));
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { a: 'bc' } })))).toBe(
      'InvalidCiphertextException',
    );
  });

  it('Decrypt with another KeyId is IncorrectKeyException; tampered blobs are InvalidCiphertextException', async () => {
    const k1 = await newKey();
    const k2 = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k1.id, Plaintext: Buffer.from('abc') }));
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: k2.id })))).toBe(
      'IncorrectKeyException',
    );
    const tampered = Buffer.from(enc.CiphertextBlob!);
    tampered[tampered.length - 1]! ^= 1;
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: tampered })))).toBe('InvalidCiphertextException');
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from('not a blob at all, not at all') })))).toBe(
      'InvalidCiphertextException',
    );
  });

  it('ReEncrypt moves a ciphertext to another key and context without returning plaintext', async () => {
    const k1 = await newKey();
    const k2 = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k1.id, Plaintext: Buffer.from('payload'), EncryptionContext: ctx }));
    const dctx = { ...ctx, 'vectorseal:dek-version': '2' };
    const re = await kms.send(
      new ReEncryptCommand({
        CiphertextBlob: enc.CiphertextBlob,
        SourceEncryptionContext: ctx,
        DestinationKeyId: k2.arn,
        DestinationEncryptionContext: dctx,
      }),
    );
    expect(re.SourceKeyId).toBe(k1.arn);
    expect(re.KeyId).toBe(k2.arn);
    expect((re as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: dctx, KeyId: k2.id }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('payload');
    expect(
      await errorName(
        kms.send(
          new ReEncryptCommand({
            CiphertextBlob: enc.CiphertextBlob,
            SourceKeyId: k2.id,
            DestinationKeyId: k2.id,
            SourceEncryptionContext: ctx,
          }),
        ),
      ),
    ).toBe('IncorrectKeyException');
    expect(await errorName(kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: k2.id })))).toBe(
      'InvalidCiphertextException',
    );
  });
});

describe('key states', () => {
  it('DisableKey blocks use with DisabledException; EnableKey restores it', async () => {
    const k = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: Buffer.from('abc') }));
    await kms.send(new DisableKeyCommand({ KeyId: k.id }));
    expect((await kms.send(new DescribeKeyCommand({ KeyId: k.id }))).KeyMetadata).toMatchObject({ KeyState: 'Disabled', Enabled: false });
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob })))).toBe('DisabledException');
    expect(await errorName(kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: Buffer.from('x') })))).toBe('DisabledException');
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: k.id, KeySpec: 'AES_256' })))).toBe('DisabledException');
    const other = await newKey();
    expect(await errorName(kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: other.id })))).toBe(
      'DisabledException',
    );
    await kms.send(new EnableKeyCommand({ KeyId: k.id }));
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }));
    expect(Buffer.from(d.Plaintext!).toString()).toBe('abc');
  });

  it('ScheduleKeyDeletion gates use with KMSInvalidStateException; CancelKeyDeletion returns the key Disabled', async () => {
    const k = await newKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: Buffer.from('abc') }));
    expect(await errorName(kms.send(new ScheduleKeyDeletionCommand({ KeyId: k.id, PendingWindowInDays: 6 })))).toBe('ValidationException');
    const s = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: k.id }));
    expect(s).toMatchObject({ KeyId: k.arn, KeyState: 'PendingDeletion', PendingWindowInDays: 30 });
    expect(s.DeletionDate!.getTime() - Date.now()).toBeGreaterThan(29 * 86400_000);
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob })))).toBe('KMSInvalidStateException');
    expect(await errorName(kms.send(new EnableKeyCommand({ KeyId: k.id })))).toBe('KMSInvalidStateException');
    expect(await errorName(kms.send(new ScheduleKeyDeletionCommand({ KeyId: k.id })))).toBe('KMSInvalidStateException');
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/to-deleted', TargetKeyId: k.id })))).toBe(
      'KMSInvalidStateException',
    );
    const meta = (await kms.send(new DescribeKeyCommand({ KeyId: k.id }))).KeyMetadata!;
    expect(meta.KeyState).toBe('PendingDeletion');
    expect(meta.DeletionDate).toBeInstanceOf(Date);
    const c = await kms.send(new CancelKeyDeletionCommand({ KeyId: k.id }));
    expect(c.KeyId).toBe(k.arn);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: k.id }))).KeyMetadata!.KeyState).toBe('Disabled');
    expect(await errorName(kms.send(new CancelKeyDeletionCommand({ KeyId: k.id })))).toBe('KMSInvalidStateException');
    await kms.send(new EnableKeyCommand({ KeyId: k.id }));
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext).toBeDefined();
  });
});
