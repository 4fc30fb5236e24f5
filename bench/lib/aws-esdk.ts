import { randomBytes } from 'node:crypto';
import type { AwsEsdk } from './peers.js';

/**
 * The AWS Encryption SDK contender: `@aws-crypto/client-node` with a raw AES
 * keyring (AES-256), the committing suite without signatures
 * (ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY) under
 * REQUIRE_ENCRYPT_REQUIRE_DECRYPT, encrypting a 1 MiB segment in frames of
 * the page size: what a user would pick to seal the same bytes.
 */
export const ESDK_SEGMENT_BYTES = 1024 * 1024;

export interface EsdkSample {
  pageSize: number;
  /** MB/s (10^6 B of plaintext per second, wall clock). */
  seal: number;
  open: number;
  /** MB/s per CPU-second of the process (the SDK runs on the calling thread): robust when the machine is busy. */
  sealCpu: number;
  openCpu: number;
}

export class EsdkContender {
  private readonly client: ReturnType<AwsEsdk['buildClient']>;
  private readonly keyring: object;
  private readonly suiteId: number;
  private readonly segment = randomBytes(ESDK_SEGMENT_BYTES);

  constructor(esdk: AwsEsdk) {
    this.client = esdk.buildClient(esdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    this.suiteId = esdk.AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
    this.keyring = new esdk.RawAesKeyringNode({
      keyName: 'bench-kek',
      keyNamespace: 'vectorseal-bench',
      unencryptedMasterKey: randomBytes(32),
      wrappingSuite: esdk.RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  }

  private encrypt(pageSize: number): ReturnType<EsdkContender['client']['encrypt']> {
    return this.client.encrypt(this.keyring, this.segment, {
      suiteId: this.suiteId,
      frameLength: pageSize,
      encryptionContext: { bench: 'pages' },
    });
  }

  /**
   * Checks that the SDK really used the requested suite and frame length and
   * that its ciphertext decrypts to the segment; throws otherwise. Returns
   * one ciphertext for the open measurement.
   */
  async verify(pageSize: number): Promise<Buffer> {
    const { result, messageHeader } = await this.encrypt(pageSize);
    if (messageHeader.suiteId !== this.suiteId || messageHeader.frameLength !== pageSize) {
      throw new Error(
        `AWS Encryption SDK used suite ${messageHeader.suiteId} with frames of ${messageHeader.frameLength}, ` +
          'not the requested ones; refusing to time it',
      );
    }
    // Every frame carries a 16-byte tag: fewer bytes than that means no framing at this size.
    if (result.length < ESDK_SEGMENT_BYTES + Math.ceil(ESDK_SEGMENT_BYTES / pageSize) * 16) {
      throw new Error('AWS Encryption SDK ciphertext is shorter than framing requires; refusing to time it');
    }
    const back = await this.client.decrypt(this.keyring, result);
    if (!back.plaintext.equals(this.segment) || back.messageHeader.suiteId !== this.suiteId) {
      throw new Error('AWS Encryption SDK round trip produced wrong output; refusing to time it');
    }
    return result;
  }

  /** Seal and open MB/s for one page size, each op timed for about `seconds`. */
  async measure(pageSize: number, seconds: number): Promise<EsdkSample> {
    const sealed = await this.verify(pageSize);
    const seal = await rate(seconds, () => this.encrypt(pageSize));
    const open = await rate(seconds, () => this.client.decrypt(this.keyring, sealed));
    return { pageSize, seal: seal.wall, open: open.wall, sealCpu: seal.cpu, openCpu: open.cpu };
  }
}

async function rate(seconds: number, step: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  await step();
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let n = 0;
  let now = start;
  while (now < deadline) {
    await step();
    n++;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpu0);
  const mb = (n * ESDK_SEGMENT_BYTES) / 1e6;
  return { wall: mb / (Number(now - start) / 1e9), cpu: mb / ((cpu.user + cpu.system) / 1e6) };
}
