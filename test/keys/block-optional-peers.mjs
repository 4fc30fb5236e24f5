// Module resolution hooks that make the optional peers resolve as a default
// install leaves them: not installed (ERR_MODULE_NOT_FOUND, as Node reports it).
const BLOCKED = new Set(['pkcs11js', '@aws-sdk/client-kms']);

export async function resolve(specifier, context, next) {
  if (BLOCKED.has(specifier)) {
    const err = new Error(`Cannot find package '${specifier}' imported from ${context.parentURL}`);
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}
