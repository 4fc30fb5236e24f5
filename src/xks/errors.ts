/**
 * The XKS proxy's wire errors: the error names and HTTP statuses of the XKS
 * Proxy API specification's error table. The body is
 * `{"errorName": ..., "errorMessage": ...}`; the message is printable ASCII,
 * under 512 characters, and never holds plaintext, key bytes or secrets.
 */

export const XKS_ERROR_STATUS = {
  ValidationException: 400,
  InvalidStateException: 400,
  InvalidCiphertextException: 400,
  InvalidKeyUsageException: 400,
  AuthenticationFailedException: 401,
  AccessDeniedException: 403,
  KeyNotFoundException: 404,
  InvalidUriPathException: 404,
  ThrottlingException: 429,
  UnsupportedOperationException: 501,
  DependencyTimeoutException: 503,
  InternalException: 500,
} as const;

export type XksErrorName = keyof typeof XKS_ERROR_STATUS;

export class XksError extends Error {
  readonly status: number;

  constructor(
    readonly errorName: XksErrorName,
    message: string,
    /** Overrides the table's status (405 for a GET on an API path). */
    status?: number,
  ) {
    super(printable(message));
    this.name = 'XksError';
    this.status = status ?? XKS_ERROR_STATUS[errorName];
  }

  /** The response body. */
  toJSON(): { errorName: XksErrorName; errorMessage: string } {
    return { errorName: this.errorName, errorMessage: this.message };
  }
}

/** Printable ASCII (0x20-0x7e), under 512 characters, as the spec requires of errorMessage. */
function printable(message: string): string {
  return message.replace(/[^\x20-\x7e]/g, '?').slice(0, 511);
}

/** Shorthands, so call sites stay short. */
export const xksErrors = {
  validation: (m: string) => new XksError('ValidationException', m),
  invalidState: (m: string) => new XksError('InvalidStateException', m),
  invalidCiphertext: (m: string) => new XksError('InvalidCiphertextException', m),
  invalidKeyUsage: (m: string) => new XksError('InvalidKeyUsageException', m),
  authenticationFailed: (m: string) => new XksError('AuthenticationFailedException', m),
  accessDenied: (m: string) => new XksError('AccessDeniedException', m),
  keyNotFound: (m: string) => new XksError('KeyNotFoundException', m),
  invalidUriPath: (m: string) => new XksError('InvalidUriPathException', m),
  throttling: (m: string) => new XksError('ThrottlingException', m),
  unsupportedOperation: (m: string) => new XksError('UnsupportedOperationException', m),
  dependencyTimeout: (m: string) => new XksError('DependencyTimeoutException', m),
  internal: (m: string) => new XksError('InternalException', m),
} as const;
