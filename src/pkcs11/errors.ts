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
 * CKR_ name) to vectorseal's typed errors.

 * A device fault (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_DEVICE_*) means
 * the token is not working, never that the caller's data is bad: it maps to
 * KeyProviderUnavailableError. Callers that see one of the two generic codes
 * from a decryption (SoftHSM2 reports a GCM tag mismatch as
 * CKR_GENERAL_ERROR) ask the token to prove it is healthy before blaming the
 * data (see `isGenericFailure`). Messages name the operation, the
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
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
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

/** Sessions that failed with these are dropped from the pool instead of reused, and the call is retried once. */
const SESSION_BROKEN = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_DEVICE_ERROR',
]);

/** Codes that say the token is not working (as opposed to refusing this input). */
const DEVICE_FAULT = new Set(['CKR_DEVICE_ERROR', 'CKR_DEVICE_MEMORY', 'CKR_DEVICE_REMOVED', 'CKR_GENERAL_ERROR', 'CKR_FUNCTION_FAILED']);

/** PKCS#11 names of the vendor-range codes pkcs11js does not know (it says CKR_VENDOR_DEFINED for them). */
const CODE_NAMES: Record<number, string> = { 0x1b: 'CKR_ACTION_PROHIBITED' };

/**
 * The CKR_ name of the PKCS#11 failure behind `err`, or undefined when there
 * is none. Follows the `cause` chain: by the time an error reaches the
 * session pool it has usually been wrapped in a VectorsealError, and the
 * decision (drop the session, log in again) belongs to the token's code, not
 * to the wrapper's message.
 */
export function ckrName(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const message = (e as { message?: unknown }).message;
    if (typeof message !== 'string') continue;
    const name = /^(CKR_[A-Z0-9_]+)/.exec(message)?.[1];
    if (name === undefined) continue;
    const code = (e as { code?: unknown }).code;
    if (name === 'CKR_VENDOR_DEFINED' && typeof code === 'number' && CODE_NAMES[code] !== undefined) return CODE_NAMES[code];
    return name;
  }
  return undefined;
}

/** Whether the session that produced `err` is unusable (closed from outside, token removed). */
export function isSessionBroken(err: unknown): boolean {
  const name = ckrName(err);
  return name !== undefined && SESSION_BROKEN.has(name);
}

/** Whether the token says the application is not logged in (a token reset, a C_Logout elsewhere). */
export function isNotLoggedIn(err: unknown): boolean {
  return ckrName(err) === 'CKR_USER_NOT_LOGGED_IN';
}

/** Whether `err` is a device fault: the token is not working. */
export function isDeviceFault(err: unknown): boolean {
  const name = ckrName(err);
  return name !== undefined && DEVICE_FAULT.has(name);
}

/**
 * Whether `err` is one of the two codes a token uses both for "the device
 * failed" and (SoftHSM2, some HSMs) "the GCM tag did not verify". Such a
 * decryption failure is only blamed on the data after the token has shown it
 * is healthy.
 */
export function isGenericFailure(err: unknown): boolean {
  const name = ckrName(err);
  return name === 'CKR_GENERAL_ERROR' || name === 'CKR_FUNCTION_FAILED';
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
