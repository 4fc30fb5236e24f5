import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError } from '../errors.js';
import { writeFileAtomic } from '../util/durable.js';
import type { Space } from './layer.js';

export const CATALOG_FILE = 'CATALOG';

/**
 * A collection as the catalog records it. The catalog is plaintext JSON:
 * collection names, tenants and parameters are documented as not
 * confidential. Each collection's sealed manifest repeats name and
 * parameters, so a tampered catalog is caught when the collection opens.
 */
export interface CollectionInfo {
  id: string;
  name: string;
  dim: number;
  space: Space;
  tenant?: string;
  M: number;
  efConstruction: number;
  createdAt: string;
  /**
   * Set while a createCollection or dropCollection is under way: the entry is
   * written before the collection's files change, so an open after a crash
   * can finish (or undo) the step instead of mistaking it for a tampered
   * catalog. Never set on an entry the store hands out.
   */
  state?: 'creating' | 'dropping';
}

interface CatalogFile {
  format: 'vectorseal-catalog';
  version: 1;
  collections: CollectionInfo[];
}

/** The collections a CATALOG lists; none when the file does not exist. */
export async function readCatalog(dir: string): Promise<CollectionInfo[]> {
  const file = join(dir, CATALOG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseCatalog(text, file);
}

/** The collections the text of a CATALOG file lists (a reader parses the very bytes it checked against STATE). */
export function parseCatalog(text: string, file: string): CollectionInfo[] {
  try {
    const c = JSON.parse(text) as CatalogFile;
    if (c.format !== 'vectorseal-catalog' || !Array.isArray(c.collections)) throw new Error('unexpected shape');
    // Entries go straight to hnswlib, which throws untyped errors on wrong types.
    if (!c.collections.every(isCollectionInfo)) throw new Error('a collection entry has the wrong shape');
    return c.collections;
  } catch (err) {
    throw new CorruptDataError('catalog does not parse', { file, reason: 'decode', cause: err });
  }
}

/** The bytes of a CATALOG file listing `collections` (also used for backups of some collections). */
export function encodeCatalog(collections: CollectionInfo[]): Buffer {
  const body: CatalogFile = { format: 'vectorseal-catalog', version: 1, collections };
  return Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
}

export async function writeCatalog(dir: string, collections: CollectionInfo[]): Promise<void> {
  await writeFileAtomic(join(dir, CATALOG_FILE), encodeCatalog(collections), 0o600);
}

function isCollectionInfo(v: unknown): v is CollectionInfo {
  const i = v as Record<string, unknown>;
  const posInt = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) > 0;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof i['id'] === 'string' &&
    typeof i['name'] === 'string' &&
    posInt(i['dim']) &&
    posInt(i['M']) &&
    posInt(i['efConstruction']) &&
    (i['space'] === 'l2' || i['space'] === 'ip' || i['space'] === 'cosine') &&
    (i['tenant'] === undefined || typeof i['tenant'] === 'string') &&
    (i['state'] === undefined || i['state'] === 'creating' || i['state'] === 'dropping') &&
    typeof i['createdAt'] === 'string'
  );
}
