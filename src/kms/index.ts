export { startKeyService, type KeyServiceOptions, type RunningKeyService } from './server.js';
export type { EtcdStoreOptions } from './etcd-key-store.js';
export {
  loadKeyServiceConfig,
  validateKeyServiceConfig,
  type KeyServiceConfig,
  type PrincipalConfig,
  type PolicyStatement,
} from './config.js';
export { LocalRootKeyFile, type RootKeyProtector } from './root-key.js';
export { Pkcs11RootKey, type Pkcs11RootKeyOptions } from './root-pkcs11.js';
export { systemClock, type Clock } from './clock.js';
export { KmsException } from './errors.js';
export { createAccessKey, createKeyServiceConfig } from './access-keys.js';
