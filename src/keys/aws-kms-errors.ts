import {
  AccessDeniedError,
  CorruptDataError,
  InvalidArgumentError,
  KeyDisabledError,
  KeyPendingDeletionError,
  KeyProviderUnavailableError,
  NotFoundError,
  VectorsealError,
  WrongKeyError,
} from '../errors.js';

/** KMS exception names worth another attempt: throttling and transient service faults. */
const RETRYABLE_NAMES = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'KMSInternalException',
  'DependencyTimeoutException',
  'KeyUnavailableException',
  'ServiceUnavailable',
  'InternalFailure',
  'TimeoutError',
  'RequestTimeout',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

/** Whether a failed KMS call may succeed if tried again (throttling, 5xx, network faults). */
export function isRetryableKmsError(err: unknown): boolean {
  const e = (err ?? {}) as SdkErrorShape;
  if (e.name !== undefined && RETRYABLE_NAMES.has(e.name)) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  // No HTTP response at all: the request never completed.
  return e.$fault === undefined && !(err instanceof VectorsealError);
}

/**
 * Maps a KMS exception to the project's typed errors, keeping it as `cause`.
 * The message names the operation and key reference, never a blob or key.
 */
export function mapKmsError(err: unknown, operation: string, keyRef: string): VectorsealError {
  // Already ours (the SDK not installed, a failover that ran out of endpoints): its code and message stand.
  if (err instanceof VectorsealError) return err;
  const name = ((err ?? {}) as SdkErrorShape).name ?? 'Error';
  const message = String(((err ?? {}) as SdkErrorShape).message ?? '');
  const where = `KMS ${operation} with key ${keyRef}`;
  const opts = { cause: err };
  switch (name) {
    case 'DisabledException':
      return new KeyDisabledError(`${where}: the key is disabled`, opts);
    case 'KMSInvalidStateException':
      if (/pending ?deletion/i.test(message)) return new KeyPendingDeletionError(`${where}: the key is pending deletion`, opts);
      if (/pending ?import/i.test(message)) return new KeyDisabledError(`${where}: the key is waiting for imported key material`, opts);
      return new KeyDisabledError(`${where}: the key is not in a usable state`, opts);
    case 'NotFoundException':
      return new NotFoundError(`${where}: the key does not exist`, opts);
    case 'AccessDeniedException':
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'MissingAuthenticationTokenException':
    case 'ExpiredTokenException':
      return new AccessDeniedError(`${where}: access denied (${name})`, opts);
    case 'IncorrectKeyException':
      return new WrongKeyError(`${where}: the wrapped DEK was made under another KMS key`, opts);
    case 'InvalidCiphertextException':
      return new CorruptDataError(`${where}: the wrapped DEK or its encryption context does not authenticate`, { ...opts, reason: 'auth' });
    case 'ValidationException':
    case 'InvalidKeyUsageException':
    case 'InvalidArnException':
      return new InvalidArgumentError(`${where}: the request was rejected (${name})`, opts);
    default:
      return new KeyProviderUnavailableError(`${where} failed (${name})`, opts);
  }
}
