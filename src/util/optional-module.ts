import { KeyProviderUnavailableError } from '../errors.js';

/**
 * Imports an optional peer dependency (pkcs11js, @aws-sdk/client-kms) the
 * first time a provider needs it, so that a default install never loads or
 * builds it. A package that is not installed, or whose native addon did not
 * build, is a typed error naming the package and the command to install it.
 */
export async function importOptional<T>(pkg: string, usedBy: string): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (cause) {
    const code = (cause as { code?: unknown } | undefined)?.code;
    const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    throw new KeyProviderUnavailableError(
      missing
        ? `${usedBy} needs the optional package ${pkg}, which is not installed: run \`npm install ${pkg}\``
        : `${usedBy} needs the optional package ${pkg}, which is installed but does not load (its native addon ` +
            `may not have built: run \`npm rebuild ${pkg}\`)`,
      { cause },
    );
  }
}
