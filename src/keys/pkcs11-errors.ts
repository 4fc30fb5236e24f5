import {
  AccessDeniedError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyProviderUnavailableError,
  UnsupportedOperationError,
  VectorsealError,
} from '../errors.js';

/**
 * Maps a PKCS#11 failure (pkcs11js throws `Pkcs11Error` whose message is the
 * CKR_ name) to vectorseal's typed errors. Messages name the operation, the
 * token and the key label, and the CKR_ code; never a PIN or key bytes.
 *
 * Decryption failures (a damaged or moved wrap) are not mapped here: the
 * caller knows the key check value matched and turns them into
 * CorruptDataError itself.
 */

const ACCESS_DENIED = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_LOCKED',
  'CKR_USER_PIN_NOT_INITIALIZED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_USER_TYPE_INVALID',
]);

const UNAVAILABLE = new Set([
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_SLOT_ID_INVALID',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_COUNT',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_HOST_MEMORY',
]);

const UNSUPPORTED = new Set([
  'CKR_MECHANISM_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
  'CKR_FUNCTION_NOT_SUPPORTED',
  'CKR_KEY_TYPE_INCONSISTENT',
  'CKR_KEY_SIZE_RANGE',
  'CKR_TEMPLATE_INCONSISTENT',
  'CKR_ATTRIBUTE_VALUE_INVALID',
  'CKR_ATTRIBUTE_READ_ONLY',
]);

const KEY_GONE = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

/** Sessions that failed with these are dropped from the pool instead of reused. */
const SESSION_BROKEN = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_DEVICE_ERROR',
  'CKR_USER_NOT_LOGGED_IN',
]);

/** The CKR_ name of a pkcs11js error, or undefined for anything else. */
export function ckrName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const message = (err as { message?: unknown }).message;
  if (typeof message !== 'string') return undefined;
  return /^(CKR_[A-Z0-9_]+)/.exec(message)?.[1];
}

export function isSessionBroken(err: unknown): boolean {
  const name = ckrName(err);
  return name !== undefined && SESSION_BROKEN.has(name);
}

export function isKeyHandleGone(err: unknown): boolean {
  const name = ckrName(err);
  return name !== undefined && KEY_GONE.has(name);
}

/** Whether the token refused to use a key for this function (the key is disabled). */
export function isFunctionNotPermitted(err: unknown): boolean {
  return ckrName(err) === 'CKR_KEY_FUNCTION_NOT_PERMITTED';
}

/**
 * A typed error for a failed PKCS#11 call. `what` says what was being done and
 * to which object ("unwrap with KEK \"kek\" v2 on token \"prod\""); it is
 * copied into the message and must not contain secrets.
 */
export function mapPkcs11Error(err: unknown, what: string): VectorsealError {
  if (err instanceof VectorsealError) return err;
  const name = ckrName(err);
  if (name === undefined) {
    return new KeyProviderUnavailableError(`PKCS#11 ${what} failed: ${(err as Error)?.name ?? 'unknown error'}`, { cause: err });
  }
  const message = `PKCS#11 ${what} failed with ${name}`;
  if (ACCESS_DENIED.has(name)) return new AccessDeniedError(message, { cause: err });
  if (UNAVAILABLE.has(name)) return new KeyProviderUnavailableError(message, { cause: err });
  if (UNSUPPORTED.has(name)) return new UnsupportedOperationError(message, { cause: err });
  if (KEY_GONE.has(name)) return new KeyDestroyedError(message, { cause: err });
  if (name === 'CKR_KEY_FUNCTION_NOT_PERMITTED') return new KeyDisabledError(message, { cause: err });
  return new KeyProviderUnavailableError(message, { cause: err });
}
