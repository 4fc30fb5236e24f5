/**
 * Field names that can carry data or secrets: vectors, metadata, record ids,
 * filters, key bytes, PINs and passwords. The store's logger censors them and
 * the audit trail removes them, so that a mistaken log call or a bug in the
 * audit allow-list cannot write one. One list for both, so that a name added
 * for one is covered by the other.
 */
export const REDACTED_FIELDS: readonly string[] = [
  'vector',
  'vectors',
  'embedding',
  'metadata',
  'id',
  'ids',
  'record',
  'records',
  'filter',
  'plaintext',
  'ciphertext',
  'key',
  'keys',
  'dek',
  'kek',
  'plaintextKey',
  'keyMaterial',
  'material',
  'secret',
  'pin',
  'password',
  'passphrase',
  'token',
];
