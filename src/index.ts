export * from './errors.js';
export * as chunked from './crypto/index.js';
export type { ChunkCipher, ChunkEngine } from './crypto/engine.js';
export { defaultEngine, selectEngine, type EngineChoice } from './crypto/engines.js';
export { KekProvider, DEK_BYTES } from './keys/provider.js';
export type { GeneratedDek, KekDescription, KekState, WrappedDek } from './keys/provider.js';
export { CONTEXT_KEYS, contextBytes, toEncryptionContext, type DekContext } from './keys/context.js';
export { LocalKekProvider, MASTER_KEY_ENV, type LocalKekOptions } from './keys/local.js';
export {
  KeyManager,
  KEYRING_FILE,
  defaultLocalKeyDir,
  type KeyAuditEvent,
  type KeyManagerOptions,
  type CreateKeyringOptions,
  type ProviderFactory,
  type RotationReport,
} from './keys/key-manager.js';
export type { KeyringData, KekEntry, CollectionKeys, DekRecord } from './keys/keyring-file.js';
export type { KekConfig } from './keys/kek-config.js';
export type { KekBinding } from './keys/provider-registry.js';
export type { KeyringUpgradeReport } from './keys/keyring-upgrade.js';
export {
  SegmentKind,
  SegmentReader,
  SegmentWriter,
  readSegment,
  writeSegment,
  type SegmentHeader,
  type SegmentExpectation,
} from './storage/segment.js';
export * from './store/index.js';
export { AwsKmsKekProvider, type AwsKmsProviderOptions } from './keys/aws-kms.js';
export {
  Pkcs11KekProvider,
  pkcs11ProviderFactory,
  pkcs11KeyringConfig,
  type Pkcs11KekOptions,
} from './keys/pkcs11.js';
export { XksKekProvider, xksProviderFactory, type XksKekOptions } from './keys/xks.js';
export {
  startXksProxy,
  XksHsm,
  createXksCredential,
  loadXksConfig,
  type XksConfig,
  type XksProxyOptions,
  type RunningXksProxy,
} from './xks/index.js';
export {
  backupStore,
  restoreBackup,
  verifyBackup,
  type BackupOptions,
  type BackupReport,
  type RestoreOptions,
  type RestoreReport,
  type RewrapOptions,
  type VerifyBackupOptions,
  type VerifyBackupReport,
} from './backup/index.js';
export {
  AuditTrail,
  verifyAuditTrail,
  assertAuditTrailIntact,
  type AuditTrailOptions,
  type AuditEvent,
  type AuditHead,
  type AuditVerification,
} from './audit/index.js';
export {
  startKeyService,
  createKeyServiceConfig,
  createAccessKey,
  LocalRootKeyFile,
  Pkcs11RootKey,
  type KeyServiceOptions,
  type RunningKeyService,
  type KeyServiceConfig,
  type RootKeyProtector,
} from './kms/index.js';
