/**
 * One error module for the whole project. Every failure a caller can act on is
 * a subclass of {@link VectorsealError} with a literal, stable `code`; callers
 * match on `code` (or `instanceof`), never on message text. A provider's or the
 * platform's own error is kept as `cause`.
 *
 * Messages never contain key bytes, vector values or metadata: they name files,
 * pages, collections and key references only.
 */

export interface VectorsealErrorOptions {
  cause?: unknown;
}

/** Base class of every typed error vectorseal throws. */
export class VectorsealError extends Error {
  /** One of {@link ERROR_CODES}; `VS_ERROR` only on the base class, for a failure with no more specific code. */
  readonly code: VectorsealErrorCode = 'VS_ERROR';

  constructor(message: string, options?: VectorsealErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** A key (master key, KEK or DEK) is not the one the data was protected with. */
export class WrongKeyError extends VectorsealError {
  override readonly code = 'VS_WRONG_KEY';
}

export interface CorruptDataDetails extends VectorsealErrorOptions {
  /** The file in which the damage was found, when there is one. */
  file?: string;
  /** The page (chunk) index inside that file, when the damage is in one page. */
  page?: number;
  /** A short machine-readable reason: 'auth', 'truncated', 'trailing', 'header', 'hash', 'seal', 'rollback', 'missing', ... */
  reason?: string;
}

/** Persisted data is corrupt, truncated, extended, reordered, swapped or rolled back. */
export class CorruptDataError extends VectorsealError {
  override readonly code: 'VS_CORRUPT_DATA' | 'VS_ROLLBACK' = 'VS_CORRUPT_DATA';
  readonly file: string | undefined;
  readonly page: number | undefined;
  readonly reason: string | undefined;

  constructor(message: string, details: CorruptDataDetails = {}) {
    const where = [
      details.file === undefined ? undefined : `file ${details.file}`,
      details.page === undefined ? undefined : `page ${details.page}`,
    ]
      .filter((part) => part !== undefined)
      .join(', ');
    super(where ? `${message} (${where})` : message, details);
    this.file = details.file;
    this.page = details.page;
    this.reason = details.reason;
  }
}

/** A file was replaced by an older version of itself (a rollback). */
export class RollbackError extends CorruptDataError {
  override readonly code = 'VS_ROLLBACK';
}

/** The key (KEK, tenant or collection) is disabled. */
export class KeyDisabledError extends VectorsealError {
  override readonly code = 'VS_KEY_DISABLED';
}

/** The key is scheduled for deletion and cannot be used until the deletion is cancelled. */
export class KeyPendingDeletionError extends VectorsealError {
  override readonly code = 'VS_KEY_PENDING_DELETION';
}

/** The key was destroyed (crypto-shredded): the data it protected cannot be opened. */
export class KeyDestroyedError extends VectorsealError {
  override readonly code = 'VS_KEY_DESTROYED';
}

/** The key provider refused the operation for this principal. */
export class AccessDeniedError extends VectorsealError {
  override readonly code = 'VS_ACCESS_DENIED';
}

/** A collection, key, tenant or file does not exist. */
export class NotFoundError extends VectorsealError {
  override readonly code = 'VS_NOT_FOUND';
}

/** Something of that name already exists. */
export class AlreadyExistsError extends VectorsealError {
  override readonly code = 'VS_ALREADY_EXISTS';
}

/** An argument has the wrong type, size or value. */
export class InvalidArgumentError extends VectorsealError {
  override readonly code = 'VS_INVALID_ARGUMENT';
}

/** Another process holds the store's write lock. */
export class StoreLockedError extends VectorsealError {
  override readonly code = 'VS_STORE_LOCKED';
}

/** The store or collection was closed (or dropped) before the call. */
export class ClosedError extends VectorsealError {
  override readonly code = 'VS_CLOSED';
}

/** A file was written in a format version this build does not read. */
export class UnsupportedVersionError extends VectorsealError {
  override readonly code = 'VS_UNSUPPORTED_VERSION';
}

/** The key provider cannot be reached or did not answer in time. */
export class KeyProviderUnavailableError extends VectorsealError {
  override readonly code = 'VS_PROVIDER_UNAVAILABLE';
}

/** The provider does not support the requested operation or mechanism. */
export class UnsupportedOperationError extends VectorsealError {
  override readonly code = 'VS_UNSUPPORTED_OPERATION';
}

/** No RAM-backed staging location exists and none was named explicitly. */
export class StagingUnavailableError extends VectorsealError {
  override readonly code = 'VS_STAGING_UNAVAILABLE';
}

/** A limit was exceeded (metadata size, record count, message length). */
export class LimitExceededError extends VectorsealError {
  override readonly code = 'VS_LIMIT_EXCEEDED';
}

/** The file system is full (ENOSPC) or over quota (EDQUOT): the write failed, nothing acknowledged was lost. */
export class StorageFullError extends VectorsealError {
  override readonly code = 'VS_STORAGE_FULL';
}

/**
 * A KEK the keyring names is not in the caller's KEK configuration, so it is
 * never contacted (the data directory does not decide which keys, endpoints
 * or modules the process trusts).
 */
export class KekNotConfiguredError extends VectorsealError {
  override readonly code = 'VS_KEK_NOT_CONFIGURED';
}

/** A write was asked of a store or collection opened with `readOnly: true` (a reader beside a writer). */
export class ReadOnlyError extends VectorsealError {
  override readonly code = 'VS_READ_ONLY';
}

/**
 * A read-only open could not read one coherent snapshot: the writer changed
 * the store's files during every attempt (the last attempt's error is the
 * cause). Retrying later, or with a quieter writer, succeeds.
 */
export class SnapshotBusyError extends VectorsealError {
  override readonly code = 'VS_SNAPSHOT_BUSY';
}

/**
 * An audit entry could not be written to the trail or made durable (a write,
 * or the fsync an operation waits for, failed). The operation the entry
 * records may have taken effect; its record is not known to survive a crash.
 * The trail takes no further entry until the store is reopened: after a
 * failed fsync the kernel may have dropped the unsynced lines, so a later
 * fsync that succeeds would prove nothing.
 */
export class AuditWriteError extends VectorsealError {
  override readonly code = 'VS_AUDIT_WRITE';
}

/** Every stable error code, for documentation and exhaustive matching. */
export const ERROR_CODES = [
  'VS_WRONG_KEY',
  'VS_CORRUPT_DATA',
  'VS_ROLLBACK',
  'VS_KEY_DISABLED',
  'VS_KEY_PENDING_DELETION',
  'VS_KEY_DESTROYED',
  'VS_ACCESS_DENIED',
  'VS_NOT_FOUND',
  'VS_ALREADY_EXISTS',
  'VS_INVALID_ARGUMENT',
  'VS_STORE_LOCKED',
  'VS_CLOSED',
  'VS_UNSUPPORTED_VERSION',
  'VS_PROVIDER_UNAVAILABLE',
  'VS_UNSUPPORTED_OPERATION',
  'VS_STAGING_UNAVAILABLE',
  'VS_LIMIT_EXCEEDED',
  'VS_STORAGE_FULL',
  'VS_KEK_NOT_CONFIGURED',
  'VS_READ_ONLY',
  'VS_SNAPSHOT_BUSY',
  'VS_INDEX_BUILD',
  'VS_GRAPH_BUSY',
  'VS_AUDIT_WRITE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Every value `VectorsealError.code` can take: a stable code, or the base class's `VS_ERROR`. */
export type VectorsealErrorCode = ErrorCode | 'VS_ERROR';

/** The stable code of any thrown value: its own for a VectorsealError, `VS_ERROR` for anything else. */
export function errorCode(err: unknown): VectorsealErrorCode {
  return err instanceof VectorsealError ? err.code : 'VS_ERROR';
}

/** Building an HNSW graph on a worker thread failed (the worker crashed or could not start); nothing acknowledged is lost. */
export class IndexBuildError extends VectorsealError {
  override readonly code = 'VS_INDEX_BUILD';
}

/**
 * A call on an HNSW graph that is unsafe while a batch of points is being added
 * to it (or it is being loaded) on other threads: resize, serialize, delete
 * marks, free. Nothing was changed; retry once the batch has resolved.
 */
export class GraphBusyError extends VectorsealError {
  override readonly code = 'VS_GRAPH_BUSY';
}
