import { CorruptDataError, InvalidArgumentError, UnsupportedOperationError, VectorsealError, WrongKeyError } from '../errors.js';
import { checkDekContext, type DekContext } from './context.js';

/** Size of every DEK: AES-256. */
export const DEK_BYTES = 32;

/**
 * A DEK wrapped under one KEK. `blob` is provider-specific and opaque to the
 * keyring; `kekVersion` records which KEK version wrapped it (for KMS keys with
 * automatic backing-key rotation the KMS tracks that itself and it may be empty).
 */
export interface WrappedDek {
  /** The provider's name: 'local', 'aws-kms', 'pkcs11'. */
  provider: string;
  /** The KEK's id within the provider (a local key id, a KMS key ARN, a token object label). */
  keyId: string;
  /** The KEK version that produced this wrap, when the provider exposes versions. */
  kekVersion?: string;
  /** The wrapped key bytes. */
  blob: Uint8Array;
}

export interface GeneratedDek {
  /** The plaintext DEK. The caller owns it and must zero it when done. */
  plaintext: Uint8Array;
  wrapped: WrappedDek;
}

export type KekState = 'enabled' | 'disabled' | 'pending-deletion' | 'pending-import' | 'destroyed' | 'unavailable';

export interface KekDescription {
  provider: string;
  keyId: string;
  state: KekState;
  /** The version new wraps are made under. */
  currentVersion?: string;
  /** Every version the provider still holds. */
  versions?: string[];
  /** For pending deletion: when the key material goes. */
  deletionDate?: Date;
  /** Free-form, non-secret facts (region, token label, ARN). */
  details?: Record<string, string>;
}

/**
 * The contract every KEK provider meets. The public methods check arguments and
 * results once, here, and call the provider's protected `_…` methods; a
 * provider never sees an unchecked context and never returns an unchecked key.
 *
 * Errors: providers throw the typed errors of `errors.ts` (WrongKeyError when a
 * wrap was made under another key, CorruptDataError when a wrap fails to
 * authenticate under the right key, KeyDisabledError, KeyPendingDeletionError,
 * KeyDestroyedError, AccessDeniedError, NotFoundError,
 * KeyProviderUnavailableError), keeping the underlying error as `cause`.
 */
export abstract class KekProvider {
  /** Short provider name, stored in the keyring with each wrap. */
  abstract readonly name: string;
  /** The KEK this instance wraps under. */
  abstract readonly keyId: string;
  /**
   * Whether `rewrap` happens inside the provider (a KMS ReEncrypt), so the
   * plaintext DEK never reaches this process. When false, rewrapping is an
   * unwrap and a wrap here, and callers may do both themselves.
   */
  readonly rewrapsInside: boolean = false;

  /** A new random DEK, returned in plaintext and wrapped under the current KEK version. */
  async generateDataKey(ctx: DekContext): Promise<GeneratedDek> {
    checkDekContext(ctx);
    const generated = await this._generateDataKey(ctx);
    checkDek(generated.plaintext, 'generated');
    this.checkWrapped(generated.wrapped);
    return generated;
  }

  /** Wraps an existing DEK (used when a DEK gains another KEK, or on restore). */
  async wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek> {
    checkDekContext(ctx);
    checkDek(dek, 'input');
    const wrapped = await this._wrap(dek, ctx);
    this.checkWrapped(wrapped);
    return wrapped;
  }

  /** Unwraps a DEK. The context must be the one it was wrapped with. */
  async unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array> {
    checkDekContext(ctx);
    this.checkWrapped(wrapped);
    const dek = await this._unwrap(wrapped, ctx);
    checkDek(dek, 'unwrapped');
    return dek;
  }

  /**
   * Rewraps a DEK under the current KEK version (or the KEK this provider now
   * points at). Providers that can do it without exposing the DEK (KMS
   * ReEncrypt, an HSM) do so.
   */
  async rewrap(wrapped: WrappedDek, ctx: DekContext): Promise<WrappedDek> {
    checkDekContext(ctx);
    this.checkWrapped(wrapped);
    const out = await this._rewrap(wrapped, ctx);
    this.checkWrapped(out);
    return out;
  }

  /** Whether a wrap was made under the KEK version new wraps use now. */
  isCurrent(wrapped: WrappedDek, current: KekDescription): boolean {
    if (wrapped.provider !== this.name || wrapped.keyId !== this.keyId) return false;
    if (current.currentVersion === undefined) return true;
    return wrapped.kekVersion === current.currentVersion;
  }

  /** The KEK's state and versions. */
  async describe(): Promise<KekDescription> {
    return this._describe();
  }

  /**
   * Creates a new KEK version that new wraps use. Earlier versions stay able
   * to unwrap. With `target`, makes that version (created earlier by an
   * interrupted rotation) current instead of creating another.
   */
  async rotate(): Promise<KekDescription> {
    return this._rotate();
  }

  /**
   * Removes the KEK itself, for crypto-shredding a tenant that owns it.
   * Providers that can delete at once return 'destroyed'; a KMS schedules the
   * deletion after a waiting period (7-30 days) and returns 'scheduled'.
   */
  async destroyKek(options: { pendingWindowInDays?: number } = {}): Promise<'destroyed' | 'scheduled'> {
    const days = options.pendingWindowInDays;
    if (days !== undefined && (!Number.isInteger(days) || days < 7 || days > 30)) {
      throw new InvalidArgumentError(`"pendingWindowInDays" expected an integer in 7..30, got ${days}`);
    }
    return this._destroyKek(options);
  }

  protected async _destroyKek(_options: { pendingWindowInDays?: number }): Promise<'destroyed' | 'scheduled'> {
    throw new UnsupportedOperationError(`the ${this.name} provider cannot delete its KEKs; delete key ${this.keyId} where it is held`);
  }

  /**
   * Destroys every KEK version older than `current` (after a rotation has
   * rewrapped everything), so that old keyring copies can no longer be
   * unwrapped. Returns the versions destroyed. Providers whose versions cannot
   * be destroyed one by one (a KMS) throw UnsupportedOperationError.
   */
  async destroyOldVersions(current: string): Promise<string[]> {
    return this._destroyOldVersions(current);
  }

  protected async _destroyOldVersions(_current: string): Promise<string[]> {
    throw new UnsupportedOperationError(`the ${this.name} provider cannot destroy single KEK versions`);
  }

  /** Releases sessions and connections. */
  async close(): Promise<void> {
    /* providers with resources override */
  }

  protected abstract _generateDataKey(ctx: DekContext): Promise<GeneratedDek>;
  protected abstract _wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek>;
  protected abstract _unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array>;
  protected abstract _describe(): Promise<KekDescription>;
  protected abstract _rotate(): Promise<KekDescription>;

  /** Default rewrap: unwrap then wrap, in process memory. Providers that can do better override. */
  protected async _rewrap(wrapped: WrappedDek, ctx: DekContext): Promise<WrappedDek> {
    const dek = await this._unwrap(wrapped, ctx);
    try {
      return await this._wrap(dek, ctx);
    } finally {
      dek.fill(0);
    }
  }

  private checkWrapped(wrapped: WrappedDek): void {
    if (typeof wrapped !== 'object' || wrapped === null || !(wrapped.blob instanceof Uint8Array)) {
      throw new InvalidArgumentError('"wrapped" expected { provider, keyId, blob: Uint8Array }');
    }
    if (wrapped.provider !== this.name) {
      throw new WrongKeyError(`wrapped DEK belongs to provider "${wrapped.provider}", not "${this.name}"`);
    }
  }
}

function checkDek(dek: Uint8Array, what: string): void {
  if (!(dek instanceof Uint8Array)) {
    throw new InvalidArgumentError(`${what} DEK expected Uint8Array, got ${typeof dek}`);
  }
  if (dek.length !== DEK_BYTES) {
    // A provider returning a key of the wrong size is a provider fault, not bad input.
    throw new VectorsealError(`${what} DEK expected Uint8Array of length ${DEK_BYTES}, got length=${dek.length}`);
  }
}

/**
 * The error for a wrap that fails to authenticate under the right KEK (its
 * key check value matched): the blob was damaged, or copied from another
 * collection or DEK version whose context it was bound to.
 */
export function wrapAuthFailure(cause: unknown): CorruptDataError {
  return new CorruptDataError('wrapped DEK failed to authenticate: damaged, or copied from another collection or version', {
    reason: 'wrapped-dek',
    cause,
  });
}
