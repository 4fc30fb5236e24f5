import { CorruptDataError, UnsupportedVersionError } from '../errors.js';

/**
 * The STORE file: what makes a directory a vectorseal store (format, store
 * id, creation options). Plaintext; the store state pins its hash.
 */

export const STORE_FILE = 'STORE';
export const STORE_FORMAT = 'vectorseal-store';
export const STORE_VERSION = 1;

export interface StoreFile {
  format: string;
  version: number;
  storeId: string;
  createdAt: string;
  options: Record<string, unknown>;
}

/** Parses a STORE file; a damaged or foreign one is a CorruptDataError naming it. */
export function parseStoreFile(bytes: Buffer, file: string): StoreFile {
  let s: StoreFile;
  try {
    s = JSON.parse(bytes.toString('utf8')) as StoreFile;
  } catch (err) {
    throw new CorruptDataError('STORE file does not parse', { file, reason: 'decode', cause: err });
  }
  if (s === null || typeof s !== 'object' || s.format !== STORE_FORMAT) {
    throw new CorruptDataError('not a vectorseal STORE file', { file, reason: 'header' });
  }
  if (s.version !== STORE_VERSION) throw new UnsupportedVersionError(`store format version ${s.version} is not supported (file ${file})`);
  return s;
}
