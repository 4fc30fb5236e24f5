import type { KMSClientConfig, KeyState } from '@aws-sdk/client-kms';
import { InvalidArgumentError, KeyProviderUnavailableError, UnsupportedOperationError, VectorsealError } from '../errors.js';
import { createSdkKmsClient, type KmsClientLike } from './aws-kms-client.js';
import { isRetryableKmsError, mapKmsError } from './aws-kms-errors.js';
import { toEncryptionContext, type DekContext } from './context.js';
import { DEK_BYTES, KekProvider, type GeneratedDek, type KekDescription, type KekState, type WrappedDek } from './provider.js';

export interface AwsKmsProviderOptions {
  /** The KEK: a key id, key ARN, alias name (`alias/x`) or alias ARN. */
  keyId: string;
  /** An injected client (tests, or a caller-built SDK `KMS`). Otherwise one is built from the options below. */
  client?: KmsClientLike;
  region?: string;
  /**
   * For vectorseal's key service or a VPC endpoint, e.g. `http://127.0.0.1:4600`.
   * A comma-separated list is read as `endpoints` (what `--kms-endpoint a,b` records).
   */
  endpoint?: string;
  /**
   * Several endpoints of one KMS (the nodes of a key-service cluster): calls go
   * to the last one that answered, and a network fault or 5xx moves the call
   * to the next, with backoff once every endpoint has been tried in a round.
   */
  endpoints?: string[];
  credentials?: KMSClientConfig['credentials'];
  /** Any further SDK client settings. */
  clientConfig?: KMSClientConfig;
  /** Attempts per call for throttling and network faults (default 4, and at least two per endpoint). */
  maxAttempts?: number;
  /** First backoff delay; doubles each attempt, with jitter (default 100 ms). */
  retryBaseDelayMs?: number;
}

const STATES: Partial<Record<KeyState, KekState>> = {
  Enabled: 'enabled',
  Disabled: 'disabled',
  PendingDeletion: 'pending-deletion',
  PendingImport: 'pending-import',
  Unavailable: 'unavailable',
};

/**
 * KEKs held in AWS KMS or a KMS-compatible service (vectorseal's own). DEKs are
 * made by GenerateDataKey, unwrapped by Decrypt (always naming the key), and
 * rewrapped by ReEncrypt so plaintext DEKs never leave the KMS during rotation.
 * Every call carries the DEK context as the encryption context.
 *
 * KMS does not say which backing key wrapped a blob, so versions are counted
 * from ListKeyRotations (`v1` = the original material, `vN` after N-1
 * rotations) and each wrap is stamped with the version last seen; a stale
 * stamp only costs an extra rewrap at the next rotation.
 */
export class AwsKmsKekProvider extends KekProvider {
  readonly name = 'aws-kms';
  override readonly rewrapsInside = true;
  readonly keyId: string;
  private readonly clients: (Promise<KmsClientLike> | undefined)[];
  private readonly endpoints: (string | undefined)[];
  /** The endpoint that answered last; calls start there. */
  private current = 0;
  private readonly ownsClient: boolean;
  private knownVersion: string | undefined;
  private readonly maxAttempts: number;
  private readonly baseDelay: number;

  constructor(private readonly options: AwsKmsProviderOptions) {
    super();
    if (typeof options?.keyId !== 'string' || options.keyId.length === 0 || options.keyId.length > 2048) {
      throw new InvalidArgumentError('"keyId" expected a KMS key id, ARN or alias of length 1-2048');
    }
    this.keyId = options.keyId;
    this.ownsClient = options.client === undefined;
    this.endpoints = endpointList(options);
    this.clients = this.endpoints.map(() => undefined);
    if (options.client !== undefined) this.clients[0] = Promise.resolve(options.client);
    this.maxAttempts = options.maxAttempts ?? Math.max(4, 2 * this.endpoints.length);
    this.baseDelay = options.retryBaseDelayMs ?? 100;
  }

  protected async _generateDataKey(ctx: DekContext): Promise<GeneratedDek> {
    const kekVersion = await this.versionForWrap();
    const out = await this.call('GenerateDataKey', this.keyId, (c) =>
      c.generateDataKey({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: toEncryptionContext(ctx) }),
    );
    if (!(out.Plaintext instanceof Uint8Array) || !(out.CiphertextBlob instanceof Uint8Array)) {
      throw new KeyProviderUnavailableError(`KMS GenerateDataKey with key ${this.keyId} returned no key`);
    }
    return { plaintext: out.Plaintext, wrapped: this.wrapped(out.CiphertextBlob, out.KeyId, kekVersion) };
  }

  protected async _wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek> {
    const kekVersion = await this.versionForWrap();
    const out = await this.call('Encrypt', this.keyId, (c) =>
      c.encrypt({ KeyId: this.keyId, Plaintext: dek, EncryptionContext: toEncryptionContext(ctx) }),
    );
    return this.wrapped(requireBlob(out.CiphertextBlob, 'Encrypt', this.keyId), out.KeyId, kekVersion);
  }

  protected async _unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array> {
    const out = await this.call('Decrypt', wrapped.keyId, (c) =>
      c.decrypt({ KeyId: wrapped.keyId, CiphertextBlob: wrapped.blob, EncryptionContext: toEncryptionContext(ctx) }),
    );
    const plaintext = requireBlob(out.Plaintext, 'Decrypt', wrapped.keyId);
    if (plaintext.length !== DEK_BYTES) {
      plaintext.fill(0);
      throw new VectorsealError(
        `KMS Decrypt with key ${wrapped.keyId} returned a key of length=${plaintext.length}, expected ${DEK_BYTES}`,
      );
    }
    return plaintext;
  }

  /** ReEncrypt: the KMS decrypts and encrypts under this provider's KEK (its newest backing key) internally. */
  protected override async _rewrap(wrapped: WrappedDek, ctx: DekContext): Promise<WrappedDek> {
    const kekVersion = await this.versionForWrap();
    const context = toEncryptionContext(ctx);
    const out = await this.call('ReEncrypt', wrapped.keyId, (c) =>
      c.reEncrypt({
        CiphertextBlob: wrapped.blob,
        SourceKeyId: wrapped.keyId,
        SourceEncryptionContext: context,
        DestinationKeyId: this.keyId,
        DestinationEncryptionContext: context,
      }),
    );
    return this.wrapped(requireBlob(out.CiphertextBlob, 'ReEncrypt', this.keyId), out.KeyId, kekVersion);
  }

  protected async _describe(): Promise<KekDescription> {
    const out = await this.call('DescribeKey', this.keyId, (c) => c.describeKey({ KeyId: this.keyId }));
    const meta = out.KeyMetadata;
    if (meta === undefined) throw new KeyProviderUnavailableError(`KMS DescribeKey with key ${this.keyId} returned no metadata`);
    const count = await this.versionCount(meta.Arn ?? this.keyId);
    const versions = Array.from({ length: count }, (_, i) => `v${i + 1}`);
    const description: KekDescription = {
      provider: this.name,
      keyId: this.keyId,
      state: (meta.KeyState !== undefined ? STATES[meta.KeyState] : undefined) ?? 'unavailable',
      currentVersion: versions[versions.length - 1]!,
      versions,
      details: {
        ...(meta.Arn === undefined ? {} : { arn: meta.Arn }),
        ...(meta.KeyState === undefined ? {} : { keyState: meta.KeyState }),
        ...(meta.Origin === undefined ? {} : { origin: meta.Origin }),
      },
    };
    if (meta.DeletionDate !== undefined) description.deletionDate = meta.DeletionDate;
    this.knownVersion = description.currentVersion;
    return description;
  }

  /** RotateKeyOnDemand: KMS adds a backing key and keeps the old ones for decryption. */
  protected async _rotate(): Promise<KekDescription> {
    await this.call('RotateKeyOnDemand', this.keyId, (c) => c.rotateKeyOnDemand({ KeyId: this.keyId }));
    return this._describe();
  }

  /** ScheduleKeyDeletion: the KMS destroys the key material when the waiting period ends. */
  protected override async _destroyKek(options: { pendingWindowInDays?: number }): Promise<'scheduled'> {
    await this.call('ScheduleKeyDeletion', this.keyId, (c) => {
      if (!c.scheduleKeyDeletion) throw new UnsupportedOperationError('this KMS client cannot schedule key deletion');
      return c.scheduleKeyDeletion({ KeyId: this.keyId, PendingWindowInDays: options.pendingWindowInDays ?? 30 });
    });
    return 'scheduled';
  }

  /** Also accepts wraps recorded under the key's ARN when the provider was configured with an alias or id. */
  override isCurrent(wrapped: WrappedDek, current: KekDescription): boolean {
    if (wrapped.provider !== this.name) return false;
    if (wrapped.keyId !== this.keyId && wrapped.keyId !== current.details?.arn) return false;
    return current.currentVersion === undefined || wrapped.kekVersion === current.currentVersion;
  }

  override async close(): Promise<void> {
    if (this.ownsClient) {
      for (const pending of this.clients) {
        const c = await pending?.catch(() => undefined);
        c?.destroy?.();
      }
    }
    this.clients.fill(undefined);
  }

  private wrapped(blob: Uint8Array, arn: string | undefined, kekVersion: string | undefined): WrappedDek {
    // The ARN, not an alias, is recorded: Decrypt must name the key that wrapped the DEK even after an alias moves.
    const w: WrappedDek = { provider: this.name, keyId: arn ?? this.keyId, blob };
    if (kekVersion !== undefined) w.kekVersion = kekVersion;
    return w;
  }

  private async versionForWrap(): Promise<string | undefined> {
    if (this.knownVersion === undefined) {
      try {
        await this._describe();
      } catch {
        // Without a version stamp the wrap is still valid; it is merely rewrapped at the next rotation.
      }
    }
    return this.knownVersion;
  }

  private async versionCount(keyRef: string): Promise<number> {
    let rotations = 0;
    let marker: string | undefined;
    try {
      for (let page = 0; page < 100; page++) {
        const out = await this.call('ListKeyRotations', keyRef, (c) =>
          c.listKeyRotations(marker === undefined ? { KeyId: keyRef } : { KeyId: keyRef, Marker: marker }),
        );
        rotations += out.Rotations?.length ?? 0;
        if (!out.Truncated || out.NextMarker === undefined) break;
        marker = out.NextMarker;
      }
    } catch (err) {
      // Keys with imported material cannot rotate and may refuse to list rotations.
      if (!(err instanceof VectorsealError) || !/UnsupportedOperation/.test(err.message)) throw err;
    }
    return rotations + 1;
  }

  private getClient(index: number): Promise<KmsClientLike> {
    const endpoint = this.endpoints[index];
    this.clients[index] ??= createSdkKmsClient({
      ...this.options.clientConfig,
      ...(this.options.region === undefined ? {} : { region: this.options.region }),
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(this.options.credentials === undefined ? {} : { credentials: this.options.credentials }),
    });
    return this.clients[index]!;
  }

  /** One KMS call with retries on throttling and network faults, failures mapped to typed errors. */
  private async call<T>(operation: string, keyRef: string, fn: (client: KmsClientLike) => Promise<T>): Promise<T> {
    let lastError: unknown;
    const count = this.endpoints.length;
    let index = this.current;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        const out = await fn(await this.getClient(index));
        this.current = index;
        return out;
      } catch (err) {
        lastError = err;
        if (!isRetryableKmsError(err)) throw mapKmsError(err, operation, keyRef);
        if (attempt < this.maxAttempts) {
          index = (index + 1) % count;
          // Fail over at once while untried endpoints remain in this round; back off between rounds.
          const round = Math.floor(attempt / count);
          if (attempt % count === 0) {
            const cap = this.baseDelay * 2 ** (round - 1);
            await new Promise((r) => setTimeout(r, cap / 2 + Math.random() * (cap / 2)));
          }
        }
      }
    }
    throw new KeyProviderUnavailableError(`KMS ${operation} with key ${keyRef} failed after ${this.maxAttempts} attempts`, {
      cause: lastError,
    });
  }
}

/** The endpoints to use, in order; `[undefined]` means the SDK's default endpoint. */
function endpointList(options: AwsKmsProviderOptions): (string | undefined)[] {
  const list = options.endpoints ?? options.endpoint?.split(',');
  const cleaned = (list ?? []).map((e) => e.trim()).filter((e) => e !== '');
  if (options.endpoints !== undefined && cleaned.length === 0) throw new InvalidArgumentError('"endpoints" expected at least one URL');
  if (options.client !== undefined && cleaned.length > 1)
    throw new InvalidArgumentError('"client" cannot be combined with several endpoints');
  for (const e of cleaned) {
    if (!/^https?:\/\/[^\s,]+$/.test(e)) throw new InvalidArgumentError(`KMS endpoint expected an http(s) URL, got "${e}"`);
  }
  return cleaned.length === 0 ? [undefined] : cleaned;
}

function requireBlob(value: Uint8Array | undefined, operation: string, keyRef: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new KeyProviderUnavailableError(`KMS ${operation} with key ${keyRef} returned no data`);
  return value;
}
