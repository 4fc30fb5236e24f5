import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import {
  CreateAliasCommand,
  CreateGrantCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DeleteImportedKeyMaterialCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  GetParametersForImportCommand,
  ImportKeyMaterialCommand,
  ListAliasesCommand,
  ListGrantsCommand,
  ListKeyPoliciesCommand,
  ListResourceTagsCommand,
  PutKeyPolicyCommand,
  RetireGrantCommand,
  RevokeGrantCommand,
  SignCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateAliasCommand,
  UpdateKeyDescriptionCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { ACCOUNT, READER, TENANT_A, startHarness, type Harness } from './helpers.js';

let h: Harness;
let admin: KMSClient;
let reader: KMSClient;
let tenant: KMSClient;
beforeAll(async () => {
  h = await startHarness();
  admin = h.client();
  reader = h.client(READER);
  tenant = h.client(TENANT_A);
});
afterAll(async () => h.cleanup());

const arnOf = (name: string) => `arn:aws:iam::${ACCOUNT}:user/${name}`;
const ROOT = `arn:aws:iam::${ACCOUNT}:root`;

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as Error).name;
  }
}

async function newKey(input: ConstructorParameters<typeof CreateKeyCommand>[0] = {}): Promise<string> {
  return (await admin.send(new CreateKeyCommand(input))).KeyMetadata!.KeyId!;
}

describe('GenerateRandom', () => {
  it('returns the bytes asked for, fresh each time; bounds and unsupported members are refused', async () => {
    const a = (await admin.send(new GenerateRandomCommand({ NumberOfBytes: 32 }))).Plaintext!;
    const b = (await admin.send(new GenerateRandomCommand({ NumberOfBytes: 32 }))).Plaintext!;
    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect((await admin.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }))).Plaintext).toHaveLength(1024);
    expect(await errorName(admin.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })))).toBe('ValidationException');
    expect(await errorName(admin.send(new GenerateRandomCommand({ NumberOfBytes: 8, CustomKeyStoreId: 'cks-1' })))).toBe(
      'UnsupportedOperationException',
    );
    // The reader's policy does not list GenerateRandom.
    expect(await errorName(reader.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).toBe('AccessDeniedException');
  });
});

describe('tags, aliases and descriptions', () => {
  it('CreateKey keeps Tags; TagResource adds and overwrites, UntagResource removes, ListResourceTags pages', async () => {
    const id = await newKey({
      Tags: [
        { TagKey: 'team', TagValue: 'search' },
        { TagKey: 'env', TagValue: 'dev' },
      ],
    });
    await admin.send(
      new TagResourceCommand({
        KeyId: id,
        Tags: [
          { TagKey: 'env', TagValue: 'prod' },
          { TagKey: 'cost', TagValue: '42' },
        ],
      }),
    );
    const all = (await admin.send(new ListResourceTagsCommand({ KeyId: id }))).Tags!;
    expect(all).toEqual([
      { TagKey: 'cost', TagValue: '42' },
      { TagKey: 'env', TagValue: 'prod' },
      { TagKey: 'team', TagValue: 'search' },
    ]);
    const page = await admin.send(new ListResourceTagsCommand({ KeyId: id, Limit: 2 }));
    expect(page.Truncated).toBe(true);
    const rest = await admin.send(new ListResourceTagsCommand({ KeyId: id, Limit: 2, Marker: page.NextMarker }));
    expect(rest.Tags).toEqual([{ TagKey: 'team', TagValue: 'search' }]);
    await admin.send(new UntagResourceCommand({ KeyId: id, TagKeys: ['env', 'nope'] }));
    expect((await admin.send(new ListResourceTagsCommand({ KeyId: id }))).Tags!.map((t) => t.TagKey)).toEqual(['cost', 'team']);
    expect(await errorName(admin.send(new TagResourceCommand({ KeyId: id, Tags: [{ TagKey: 'aws:x', TagValue: 'y' }] })))).toBe(
      'TagException',
    );
    expect(
      await errorName(
        newKey({
          Tags: [
            { TagKey: 'a', TagValue: '1' },
            { TagKey: 'a', TagValue: '2' },
          ],
        }),
      ),
    ).toBe('TagException');
  });

  it('UpdateAlias moves an alias, DeleteAlias removes it; UpdateKeyDescription changes the description', async () => {
    const k1 = await newKey();
    const k2 = await newKey();
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/moving', TargetKeyId: k1 }));
    await admin.send(new UpdateAliasCommand({ AliasName: 'alias/moving', TargetKeyId: k2 }));
    expect((await admin.send(new DescribeKeyCommand({ KeyId: 'alias/moving' }))).KeyMetadata!.KeyId).toBe(k2);
    expect(await errorName(admin.send(new UpdateAliasCommand({ AliasName: 'alias/absent', TargetKeyId: k2 })))).toBe('NotFoundException');
    await admin.send(new DeleteAliasCommand({ AliasName: 'alias/moving' }));
    expect((await admin.send(new ListAliasesCommand({ KeyId: k2 }))).Aliases).toEqual([]);
    expect(await errorName(admin.send(new DeleteAliasCommand({ AliasName: 'alias/moving' })))).toBe('NotFoundException');
    await admin.send(new UpdateKeyDescriptionCommand({ KeyId: k1, Description: 'renamed' }));
    expect((await admin.send(new DescribeKeyCommand({ KeyId: k1 }))).KeyMetadata!.Description).toBe('renamed');
  });
});

describe('key policies', () => {
  it('a key without a policy has the default one (the account delegates to principal policies); ListKeyPolicies names it', async () => {
    const id = await newKey();
    const got = await admin.send(new GetKeyPolicyCommand({ KeyId: id }));
    expect(got.PolicyName).toBe('default');
    expect(JSON.parse(got.Policy!).Statement[0]).toMatchObject({ Effect: 'Allow', Principal: { AWS: ROOT }, Action: 'kms:*' });
    expect((await admin.send(new ListKeyPoliciesCommand({ KeyId: id }))).PolicyNames).toEqual(['default']);
    expect(await errorName(admin.send(new GetKeyPolicyCommand({ KeyId: id, PolicyName: 'other' })))).toBe('NotFoundException');
  });

  it(
    'explicit Deny wins over any Allow; an Allow naming a principal works without its own policy; ' +
      'conditions on the encryption context',
    async () => {
      const policy = {
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: { AWS: ROOT }, Action: 'kms:*', Resource: '*' },
          // The reader may use the key for data keys, but only with a "purpose" context entry.
          {
            Effect: 'Allow',
            Principal: { AWS: arnOf('reader') },
            Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
            Resource: '*',
            Condition: { StringLike: { 'kms:EncryptionContext:purpose': 'app-*' } },
          },
          // Nobody, admin included, decrypts with a context carrying keys outside this set.
          {
            Effect: 'Deny',
            Principal: '*',
            Action: 'kms:Decrypt',
            Resource: '*',
            Condition: { 'ForAnyValue:StringNotEquals': { 'kms:EncryptionContextKeys': ['purpose', 'tenant'] } },
          },
        ],
      };
      const id = await newKey({ Policy: JSON.stringify(policy) });
      expect(JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: id }))).Policy!)).toEqual(policy);

      const ok = { purpose: 'app-search' };
      const dk = await reader.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ok }));
      expect((await reader.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ok }))).Plaintext).toHaveLength(
        32,
      );
      expect(
        await errorName(
          reader.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: { purpose: 'other' } })),
        ),
      ).toBe('AccessDeniedException');
      expect(await errorName(reader.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x'), EncryptionContext: ok })))).toBe(
        'AccessDeniedException',
      );

      // Admin's own policy allows everything, but the Deny wins.
      const extra = { purpose: 'app-search', other: '1' };
      const blob = (await admin.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x'), EncryptionContext: extra })))
        .CiphertextBlob;
      expect(await errorName(admin.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: extra })))).toBe(
        'AccessDeniedException',
      );
    },
  );

  it('PutKeyPolicy replaces the policy; the lockout check and malformed documents are refused', async () => {
    const id = await newKey();
    const denyAll = {
      Statement: [
        { Effect: 'Allow', Principal: { AWS: ROOT }, Action: 'kms:*', Resource: '*' },
        { Effect: 'Deny', Principal: '*', Action: 'kms:Encrypt', Resource: '*' },
      ],
    };
    await admin.send(new PutKeyPolicyCommand({ KeyId: id, Policy: JSON.stringify(denyAll) }));
    expect(await errorName(admin.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') })))).toBe('AccessDeniedException');
    const lockout = { Statement: [{ Effect: 'Allow', Principal: { AWS: arnOf('reader') }, Action: 'kms:Decrypt', Resource: '*' }] };
    expect(await errorName(admin.send(new PutKeyPolicyCommand({ KeyId: id, Policy: JSON.stringify(lockout) })))).toBe(
      'MalformedPolicyDocumentException',
    );
    for (const bad of [
      '{',
      '{"Statement":[]}',
      '{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*"}]}',
      '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}',
      '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*",' +
        '"Condition":{"NumericLessThan":{"kms:EncryptionContextKeys":"1"}}}]}',
    ]) {
      expect(await errorName(admin.send(new PutKeyPolicyCommand({ KeyId: id, Policy: bad })))).toBe('MalformedPolicyDocumentException');
    }
    // With the bypass flag the lockout policy is accepted, and admin is then locked out.
    await admin.send(new PutKeyPolicyCommand({ KeyId: id, Policy: JSON.stringify(lockout), BypassPolicyLockoutSafetyCheck: true }));
    expect(await errorName(admin.send(new DescribeKeyCommand({ KeyId: id })))).toBe('AccessDeniedException');
  });
});

describe('grants', () => {
  it('a grant lets its grantee use the key within its constraints, until retired or revoked; grant tokens are checked', async () => {
    const id = await newKey();
    const ctx = { tenant: 'a', purpose: 'x' };
    expect(await errorName(reader.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ctx })))).toBe(
      'AccessDeniedException',
    );
    const g = await admin.send(
      new CreateGrantCommand({
        KeyId: id,
        GranteePrincipal: arnOf('reader'),
        RetiringPrincipal: arnOf('tenant-a'),
        Operations: ['GenerateDataKey', 'Decrypt'],
        Constraints: { EncryptionContextSubset: { tenant: 'a' } },
        Name: 'reader-a',
      }),
    );
    expect(g.GrantId).toMatch(/^[0-9a-f]{64}$/);
    const dk = await reader.send(
      new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ctx, GrantTokens: [g.GrantToken!] }),
    );
    expect((await reader.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx }))).Plaintext).toHaveLength(
      32,
    );
    expect(
      await errorName(reader.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: { tenant: 'b' } }))),
    ).toBe('AccessDeniedException');
    expect(await errorName(reader.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x'), EncryptionContext: ctx })))).toBe(
      'AccessDeniedException',
    );
    expect(
      await errorName(
        reader.send(
          new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ctx, GrantTokens: [`${g.GrantId}.forged`] }),
        ),
      ),
    ).toBe('InvalidGrantTokenException');

    const listed = (await admin.send(new ListGrantsCommand({ KeyId: id }))).Grants!;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      GrantId: g.GrantId,
      Name: 'reader-a',
      GranteePrincipal: arnOf('reader'),
      Operations: ['GenerateDataKey', 'Decrypt'],
    });
    // Same name and properties: the same grant.
    const again = await admin.send(
      new CreateGrantCommand({
        KeyId: id,
        GranteePrincipal: arnOf('reader'),
        Operations: ['GenerateDataKey', 'Decrypt'],
        Name: 'reader-a',
      }),
    );
    expect(again.GrantId).toBe(g.GrantId);

    // Only the retiring principal (or a grantee granted RetireGrant) may retire it.
    expect(await errorName(reader.send(new RetireGrantCommand({ GrantToken: again.GrantToken })))).toBe('AccessDeniedException');
    await tenant.send(new RetireGrantCommand({ GrantToken: again.GrantToken }));
    expect((await admin.send(new ListGrantsCommand({ KeyId: id }))).Grants).toEqual([]);
    expect(await errorName(reader.send(new GenerateDataKeyCommand({ KeyId: id, KeySpec: 'AES_256', EncryptionContext: ctx })))).toBe(
      'AccessDeniedException',
    );

    const g2 = await admin.send(new CreateGrantCommand({ KeyId: id, GranteePrincipal: arnOf('reader'), Operations: ['Encrypt'] }));
    await reader.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') }));
    await admin.send(new RevokeGrantCommand({ KeyId: id, GrantId: g2.GrantId }));
    expect(await errorName(reader.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') })))).toBe('AccessDeniedException');
    expect(await errorName(admin.send(new RevokeGrantCommand({ KeyId: id, GrantId: g2.GrantId })))).toBe('InvalidGrantIdException');
    expect(
      await errorName(
        admin.send(new CreateGrantCommand({ KeyId: id, GranteePrincipal: arnOf('reader'), Operations: ['Sign' as 'Encrypt'] })),
      ),
    ).toBe('ValidationException');
  });
});

describe('DeleteImportedKeyMaterial, MultiRegion on CreateKey, unsupported operations', () => {
  it('deletes imported material (key waits for the same material again); old ciphertexts open after re-import', async () => {
    const id = await newKey({ Origin: 'EXTERNAL' });
    const material = randomBytes(32);
    const importIt = async () => {
      const p = await admin.send(
        new GetParametersForImportCommand({ KeyId: id, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }),
      );
      const pub = createPublicKey({ key: Buffer.from(p.PublicKey!), format: 'der', type: 'spki' });
      const wrapped = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, material);
      await admin.send(
        new ImportKeyMaterialCommand({
          KeyId: id,
          ImportToken: p.ImportToken,
          EncryptedKeyMaterial: wrapped,
          ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
        }),
      );
    };
    await importIt();
    const blob = (await admin.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('kept') }))).CiphertextBlob;
    await admin.send(new DeleteImportedKeyMaterialCommand({ KeyId: id }));
    expect((await admin.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyState).toBe('PendingImport');
    expect(await errorName(admin.send(new DecryptCommand({ CiphertextBlob: blob })))).toBe('KMSInvalidStateException');
    await importIt();
    expect(Buffer.from((await admin.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext!).toString()).toBe('kept');
    expect(await errorName(admin.send(new DeleteImportedKeyMaterialCommand({ KeyId: await newKey() })))).toBe(
      'UnsupportedOperationException',
    );
  });

  it('CreateKey MultiRegion makes an mrk- key described as a primary', async () => {
    const meta = (await admin.send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!;
    expect(meta.KeyId).toMatch(/^mrk-[0-9a-f]{32}$/);
    expect(meta.MultiRegion).toBe(true);
    expect(meta.MultiRegionConfiguration).toMatchObject({
      MultiRegionKeyType: 'PRIMARY',
      PrimaryKey: { Region: 'us-east-1' },
      ReplicaKeys: [],
    });
    const blob = (await admin.send(new EncryptCommand({ KeyId: meta.KeyId, Plaintext: Buffer.from('m') }))).CiphertextBlob;
    expect((await admin.send(new DecryptCommand({ CiphertextBlob: blob }))).KeyId).toBe(meta.Arn);
  });

  it('KMS operations left out answer UnsupportedOperationException', async () => {
    const id = await newKey();
    expect(
      await errorName(admin.send(new SignCommand({ KeyId: id, Message: Buffer.from('m'), SigningAlgorithm: 'RSASSA_PSS_SHA_256' }))),
    ).toBe('UnsupportedOperationException');
  });
});
