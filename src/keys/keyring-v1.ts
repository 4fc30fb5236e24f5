import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { CorruptDataError, NotFoundError } from '../errors.js';
import { isId } from '../util/ids.js';
import { KEYRING_FORMAT, type KekEntry, type KeyringData } from './keyring-file.js';

export const KEYRING_V1_PREFIX = '{"checksum":"';

/**
 * The keyring file of vectorseal 0.1.0: one JSON file with an unkeyed
 * checksum, rewritten whole on every change. Read only by `vectorseal
 * upgrade` (and to tell a 0.1.0 store from a damaged one); nothing here is
 * trusted until every wrap in it has been unwrapped under the owner's KEKs.
 */

/** A 0.1.0 keyring: today's state, with each KEK's provider settings in it and no MAC key. */
export type KeyringDataV1 = Omit<KeyringData, 'version' | 'keks' | 'macKey'> & {
  version: 1;
  keks: Record<string, KekEntry & { config?: Record<string, string> }>;
};

/**
 * File layout: `{"checksum":"<sha256 hex>",` followed by the rest of the
 * keyring's compact JSON. The checksum covers exactly the JSON text without
 * that first member, so it is checked on the bytes as read, before parsing,
 * and the keyring is serialised once per write.
 */
const CHECKSUM_PREFIX = /^\{"checksum":"([0-9a-f]{64})",/;

/** Whether a keyring file's bytes are in the 0.1.0 layout. */
export function isKeyringV1(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, KEYRING_V1_PREFIX.length)).toString('latin1') === KEYRING_V1_PREFIX;
}

/** Parses and checks a 0.1.0 keyring file's bytes (checksum only: nothing here is authenticated). */
export function decodeKeyringV1(bytes: Uint8Array, file: string): KeyringDataV1 {
  const text = Buffer.from(bytes).toString('utf8').replace(/\n$/, '');
  const match = CHECKSUM_PREFIX.exec(text);
  if (!match) {
    throw new CorruptDataError(text.includes(KEYRING_FORMAT) ? 'keyring has no checksum' : 'not a vectorseal keyring', {
      file,
      reason: 'header',
    });
  }
  const body = `{${text.slice(match[0].length)}`;
  if (createHash('sha256').update(body).digest('hex') !== match[1]) {
    throw new CorruptDataError('keyring checksum does not match its contents', { file, reason: 'checksum' });
  }
  let data: KeyringDataV1;
  try {
    data = JSON.parse(body) as KeyringDataV1;
  } catch (err) {
    throw new CorruptDataError('keyring is not valid JSON', { file, reason: 'parse', cause: err });
  }
  if (typeof data !== 'object' || data === null || data.format !== KEYRING_FORMAT) {
    throw new CorruptDataError('not a vectorseal keyring', { file, reason: 'header' });
  }
  if (data.version !== 1) throw new CorruptDataError('not a 0.1.0 keyring', { file, reason: 'header' });
  if (
    !isId(data.storeId) ||
    !Number.isSafeInteger(data.generation) ||
    typeof data.collections !== 'object' ||
    typeof data.keks !== 'object'
  ) {
    throw new CorruptDataError('keyring is missing required fields', { file, reason: 'schema' });
  }
  return data;
}

/** Reads a 0.1.0 keyring file. */
export async function readKeyringV1(file: string): Promise<KeyringDataV1> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`no keyring at ${file}`, { cause: err });
    throw err;
  }
  return decodeKeyringV1(bytes, file);
}
