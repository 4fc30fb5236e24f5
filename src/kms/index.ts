export { startKeyService, type KeyServiceOptions, type RunningKeyService } from './server.js';
export { loadKeyServiceConfig, validateKeyServiceConfig, type KeyServiceConfig, type PrincipalConfig, type PolicyStatement } from './config.js';
export { LocalRootKeyFile, type RootKeyProtector } from './root-key.js';
export { systemClock, type Clock } from './clock.js';
export { KmsException } from './errors.js';
export { createAccessKey, createKeyServiceConfig } from './access-keys.js';
