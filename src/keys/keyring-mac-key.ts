import { randomBytes } from 'node:crypto';
import { CorruptDataError, KekNotConfiguredError, VectorsealError } from '../errors.js';
import type { DekContext } from './context.js';
import type { KeyAuditor } from './key-audit.js';
import type { StoredWrap } from './keyring-file.js';
import { DEK_BYTES, type KekProvider, type WrappedDek } from './provider.js';
import type { ProviderRegistry } from './provider-registry.js';

/**
 * The keyring MAC key: 32 random bytes under which every keyring record is
 * MACed, wrapped like a DEK under every default KEK of the store, so that any
 * one configured KEK verifies the keyring and an attacker without a KEK
 * cannot make a keyring the store believes.
 */

/** The DEK context the MAC key is wrapped under (a system key id no collection or store key can have). */
export function macKeyContext(storeId: string): DekContext {
  return { storeId, collectionId: 'vectorseal-keyring', dekVersion: 1 };
}

/** A fresh MAC key, wrapped under each of `keks`. */
export async function createMacKey(
  storeId: string,
  keks: readonly string[],
  provider: (name: string) => Promise<KekProvider>,
): Promise<{ key: Buffer; wraps: StoredWrap[] }> {
  const key = randomBytes(DEK_BYTES);
  try {
    return { key, wraps: await wrapMacKey(key, storeId, keks, provider) };
  } catch (err) {
    key.fill(0);
    throw err;
  }
}

/** Wraps the MAC key under each of `keks`, proving each wrap opens to it. */
export async function wrapMacKey(
  key: Uint8Array,
  storeId: string,
  keks: readonly string[],
  provider: (name: string) => Promise<KekProvider>,
): Promise<StoredWrap[]> {
  const ctx = macKeyContext(storeId);
  const wraps: StoredWrap[] = [];
  for (const name of keks) {
    const p = await provider(name);
    const w = await p.wrap(key, ctx);
    const check = await p.unwrap(w, ctx);
    const same = Buffer.compare(Buffer.from(check), Buffer.from(key)) === 0;
    check.fill(0);
    if (!same) throw new CorruptDataError(`the keyring MAC key wrapped under KEK "${name}" does not open to itself`, { reason: 'rewrap' });
    wraps.push(toStored(name, w));
  }
  return wraps;
}

/**
 * Unwraps the MAC key with the first configured KEK that opens it. KEKs the
 * caller did not configure are skipped without being contacted. A wrap that
 * fails to authenticate under the right KEK means the keyring was edited.
 */
export async function unwrapMacKey(
  storeId: string,
  wraps: readonly StoredWrap[],
  registry: ProviderRegistry,
  file: string,
  audit?: KeyAuditor,
): Promise<Buffer> {
  const ctx = macKeyContext(storeId);
  let firstError: unknown;
  let tried = 0;
  for (const w of wraps) {
    if (
      typeof w !== 'object' ||
      w === null ||
      typeof w.kek !== 'string' ||
      typeof w.provider !== 'string' ||
      typeof w.keyId !== 'string' ||
      typeof w.blob !== 'string'
    )
      continue;
    const binding = { provider: w.provider, keyId: w.keyId };
    if (!registry.isConfigured(w.kek, binding)) continue;
    tried += 1;
    try {
      const unwrap = async () => Buffer.from(await (await registry.provider(w.kek, binding)).unwrap(toWrapped(w), ctx));
      // A key use like any other: on record, with the error's code when the KEK refuses.
      return audit
        ? await audit.audited({ action: 'unwrap', collectionId: ctx.collectionId, kek: w.kek, dekVersion: 1 }, unwrap)
        : await unwrap();
    } catch (err) {
      firstError ??= err;
    }
  }
  if (tried === 0) {
    const names = wraps.map((w) => (typeof w?.kek === 'string' ? `"${w.kek.slice(0, 64)}"` : '?')).join(', ');
    throw new KekNotConfiguredError(`none of the keyring's KEKs (${names}) is in this process's KEK configuration (file ${file})`);
  }
  if (firstError instanceof CorruptDataError) {
    throw new CorruptDataError('the keyring MAC key fails to authenticate under its KEK: the keyring was edited', {
      file,
      reason: 'mac-key',
      cause: firstError,
    });
  }
  if (firstError instanceof VectorsealError) throw firstError;
  throw new CorruptDataError('the keyring MAC key cannot be unwrapped', { file, reason: 'mac-key', cause: firstError });
}

export function toWrapped(w: StoredWrap): WrappedDek {
  return {
    provider: w.provider,
    keyId: w.keyId,
    ...(w.kekVersion === undefined ? {} : { kekVersion: w.kekVersion }),
    blob: Buffer.from(w.blob, 'base64'),
  };
}

export function toStored(kek: string, w: WrappedDek): StoredWrap {
  return {
    kek,
    provider: w.provider,
    keyId: w.keyId,
    ...(w.kekVersion === undefined ? {} : { kekVersion: w.kekVersion }),
    blob: Buffer.from(w.blob).toString('base64'),
  };
}
