import { createHmac } from 'node:crypto';
import { loadNativeAddon } from './native-engine.js';

/** One-shot HMAC-SHA256 over bytes. */
export type HmacSha256 = (key: Uint8Array, data: Uint8Array) => Buffer;

/** node:crypto's HMAC-SHA256: an Hmac object per call. */
export const nodeHmacSha256: HmacSha256 = (key, data) => createHmac('sha256', key).update(data).digest();

/** The native addon's one-shot HMAC-SHA256, or undefined when the addon (or this function of it) is not built. */
export function loadNativeHmacSha256(): HmacSha256 | undefined {
  const addon = loadNativeAddon()?.addon;
  const fn = addon?.hmacSha256;
  return fn === undefined ? undefined : (key, data) => fn.call(addon, key, data);
}

let chosen: HmacSha256 | undefined;

/**
 * HMAC-SHA256 for hot paths that compute one per request (the key service's
 * SigV4 check): the native addon's when it loads, which builds no Hmac object
 * per call, else node:crypto's; `VECTORSEAL_CRYPTO=node` forces the latter.
 * Both give the same bytes (tests compare them).
 */
export function defaultHmacSha256(): HmacSha256 {
  chosen ??= process.env['VECTORSEAL_CRYPTO'] === 'node' ? nodeHmacSha256 : (loadNativeHmacSha256() ?? nodeHmacSha256);
  return chosen;
}
