export { cdiv, hsmAad } from './aad.js';
export { authorize, type AuthorizationInput, type Decision } from './authorization.js';
export { createXksCredential, loadXksConfig, validateXksConfig, type XksConfig, type XksCredential, type XksRule } from './config.js';
export { XksError, XKS_ERROR_STATUS, type XksErrorName } from './errors.js';
export { XksHsm, type XksKeyMetadata, type XksKeyUsage } from './hsm.js';
export { startXksProxy, type RunningXksProxy, type XksProxyOptions } from './server.js';
