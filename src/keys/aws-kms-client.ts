import type {
  DecryptCommandInput,
  DecryptCommandOutput,
  DescribeKeyCommandInput,
  DescribeKeyCommandOutput,
  EncryptCommandInput,
  EncryptCommandOutput,
  GenerateDataKeyCommandInput,
  GenerateDataKeyCommandOutput,
  KMSClientConfig,
  ListKeyRotationsCommandInput,
  ListKeyRotationsCommandOutput,
  ReEncryptCommandInput,
  ReEncryptCommandOutput,
  RotateKeyOnDemandCommandInput,
  RotateKeyOnDemandCommandOutput,
  ScheduleKeyDeletionCommandInput,
  ScheduleKeyDeletionCommandOutput,
} from '@aws-sdk/client-kms';
import { importOptional } from '../util/optional-module.js';

/**
 * The KMS calls the aws-kms provider makes, as a structural interface: the
 * SDK's aggregated `KMS` class satisfies it as is, and tests can inject a fake
 * that implements only these methods.
 */
export interface KmsClientLike {
  generateDataKey(
    input: GenerateDataKeyCommandInput,
  ): Promise<Pick<GenerateDataKeyCommandOutput, 'CiphertextBlob' | 'Plaintext' | 'KeyId'>>;
  encrypt(input: EncryptCommandInput): Promise<Pick<EncryptCommandOutput, 'CiphertextBlob' | 'KeyId'>>;
  decrypt(input: DecryptCommandInput): Promise<Pick<DecryptCommandOutput, 'Plaintext' | 'KeyId'>>;
  reEncrypt(input: ReEncryptCommandInput): Promise<Pick<ReEncryptCommandOutput, 'CiphertextBlob' | 'KeyId'>>;
  describeKey(input: DescribeKeyCommandInput): Promise<Pick<DescribeKeyCommandOutput, 'KeyMetadata'>>;
  rotateKeyOnDemand(input: RotateKeyOnDemandCommandInput): Promise<Pick<RotateKeyOnDemandCommandOutput, 'KeyId'>>;
  listKeyRotations(
    input: ListKeyRotationsCommandInput,
  ): Promise<Pick<ListKeyRotationsCommandOutput, 'Rotations' | 'NextMarker' | 'Truncated'>>;
  /** Only needed to crypto-shred a tenant that owns its KMS key. */
  scheduleKeyDeletion?(input: ScheduleKeyDeletionCommandInput): Promise<Pick<ScheduleKeyDeletionCommandOutput, 'DeletionDate' | 'KeyId'>>;
  destroy?(): void;
}

/**
 * Builds the real client. Region, endpoint and credentials come from the
 * SDK's usual chain (environment, shared config, instance roles) unless the
 * options name them. The SDK's own retries are off: the provider retries with
 * its own backoff so failures end in one typed error.
 */
export async function createSdkKmsClient(config: KMSClientConfig = {}): Promise<KmsClientLike> {
  // An optional peer dependency: loaded (and required) only when an aws-kms KEK is used.
  const { KMS } = await importOptional<typeof import('@aws-sdk/client-kms')>('@aws-sdk/client-kms', 'the aws-kms key provider');
  return new KMS({ maxAttempts: 1, ...config });
}
