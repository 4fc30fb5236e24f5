/**
 * Exceptions the key service returns on the wire. Their names are the AWS KMS
 * exception names (the SDK maps `__type` to its own error classes), so they
 * live here rather than in the project's error module.
 *
 * Messages name key ARNs, operations and principals only — never key
 * material, plaintext, ciphertext or secrets.
 */
export class KmsException extends Error {
  /** The AWS wire name, sent as `__type`. */
  readonly type: string;
  /** HTTP status: 400 for client faults, 500 for internal ones. */
  readonly status: number;

  constructor(type: string, message: string, status = 400) {
    super(message);
    this.name = 'KmsException';
    this.type = type;
    this.status = status;
  }
}

/** Shorthands for the exceptions the service raises, so call sites stay short. */
export const kmsErrors = {
  accessDenied: (m: string) => new KmsException('AccessDeniedException', m),
  alreadyExists: (m: string) => new KmsException('AlreadyExistsException', m),
  dependencyTimeout: (m: string) => new KmsException('DependencyTimeoutException', m, 500),
  disabled: (m: string) => new KmsException('DisabledException', m),
  expiredImportToken: (m: string) => new KmsException('ExpiredImportTokenException', m),
  incorrectKey: (m: string) => new KmsException('IncorrectKeyException', m),
  incorrectKeyMaterial: (m: string) => new KmsException('IncorrectKeyMaterialException', m),
  incompleteSignature: (m: string) => new KmsException('IncompleteSignatureException', m),
  internal: (m: string) => new KmsException('KMSInternalException', m, 500),
  invalidAliasName: (m: string) => new KmsException('InvalidAliasNameException', m),
  invalidArn: (m: string) => new KmsException('InvalidArnException', m),
  invalidCiphertext: (m: string) => new KmsException('InvalidCiphertextException', m),
  invalidGrantToken: (m: string) => new KmsException('InvalidGrantTokenException', m),
  invalidGrantId: (m: string) => new KmsException('InvalidGrantIdException', m),
  malformedPolicy: (m: string) => new KmsException('MalformedPolicyDocumentException', m),
  tag: (m: string) => new KmsException('TagException', m),
  limitExceeded: (m: string) => new KmsException('LimitExceededException', m),
  invalidImportToken: (m: string) => new KmsException('InvalidImportTokenException', m),
  invalidMarker: (m: string) => new KmsException('InvalidMarkerException', m),
  invalidSignature: (m: string) => new KmsException('InvalidSignatureException', m),
  invalidState: (m: string) => new KmsException('KMSInvalidStateException', m),
  missingAuthentication: (m: string) => new KmsException('MissingAuthenticationTokenException', m),
  notFound: (m: string) => new KmsException('NotFoundException', m),
  serialization: (m: string) => new KmsException('SerializationException', m),
  unknownOperation: (m: string) => new KmsException('UnknownOperationException', m),
  unrecognizedClient: (m: string) => new KmsException('UnrecognizedClientException', m),
  unsupportedOperation: (m: string) => new KmsException('UnsupportedOperationException', m),
  validation: (m: string) => new KmsException('ValidationException', m),
} as const;
