import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import hnswlib from 'hnswlib-node';
import { CorruptDataError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import type { Space } from '../../store/layer.js';
import { acquireStore } from '../open-stores.js';
import { toStoredMetadata } from './records.js';
import type { VectorsealLibArgs } from './vector-store.js';

/** The files LangChain's HNSWLib store writes to its directory (all plaintext). */
export const HNSWLIB_FILES = ['hnswlib.index', 'docstore.json', 'args.json'] as const;

export interface HNSWLibMigrationReport {
  /** The HNSWLib directory read. */
  source: string;
  /** The vectorseal store written. */
  dir: string;
  collection: string;
  /** Documents written and read back identical (text, metadata, vector). */
  documents: number;
  /**
   * The plaintext files of the source directory whose whole content is now
   * in the encrypted store, verified: they can be deleted. (Deleting a file
   * does not scrub the disk blocks, snapshots or backups that hold it.)
   */
  deletable: string[];
  /** Other files of the source directory, not written by HNSWLib: left alone. */
  otherFiles: string[];
}

const SPACES: readonly Space[] = ['l2', 'ip', 'cosine'];
const BATCH = 1000;

interface SourceDoc {
  pageContent: string;
  metadata: Record<string, unknown>;
  id?: string;
}

/**
 * Copies a directory written by LangChain's HNSWLib store (`save`) into a
 * vectorseal store: every document with its vector exactly as the HNSW
 * index holds it, its text and its metadata, under the ids the documents
 * carry (or `hnswlib-<label>`). The store's collection is then read back
 * and compared record by record before the report names the plaintext
 * files that can go. The source directory is never modified. Running it
 * again after an interruption upserts the same records.
 */
export async function migrateHNSWLib(source: string, target: VectorsealLibArgs): Promise<HNSWLibMigrationReport> {
  if (typeof source !== 'string' || source.length === 0) throw new InvalidArgumentError('"source" expected the HNSWLib directory');
  if (target === null || typeof target !== 'object' || typeof target.dir !== 'string')
    throw new InvalidArgumentError('"dir" expected the directory of the vectorseal store');
  const src = resolve(source);
  const args = await readJson(join(src, 'args.json'));
  const space = (args as { space?: unknown }).space;
  const dim = (args as { numDimensions?: unknown }).numDimensions;
  if (typeof space !== 'string' || !SPACES.includes(space as Space))
    throw new CorruptDataError('args.json names no space hnswlib knows', { file: join(src, 'args.json'), reason: 'decode' });
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 1)
    throw new CorruptDataError('args.json has no valid numDimensions', { file: join(src, 'args.json'), reason: 'decode' });
  const docs = docstoreOf(await readJson(join(src, 'docstore.json')), join(src, 'docstore.json'));

  const indexFile = join(src, 'hnswlib.index');
  await fs.access(indexFile).catch((err: unknown) => {
    throw new NotFoundError(`no hnswlib.index in ${src}`, { cause: err });
  });
  const index = new hnswlib.HierarchicalNSW(space as Space, dim);
  try {
    index.readIndexSync(indexFile);
  } catch (err) {
    throw new CorruptDataError('hnswlib.index does not load', { file: indexFile, reason: 'decode', cause: err });
  }
  const labels = index.getIdsList().sort((a, b) => a - b);
  const records = labels.map((label) => {
    const doc = docs.get(String(label));
    if (!doc)
      throw new CorruptDataError(`the index holds label ${label}, which docstore.json does not`, {
        file: join(src, 'docstore.json'),
        reason: 'missing',
      });
    const id = typeof doc.id === 'string' && doc.id.length > 0 ? doc.id : `hnswlib-${label}`;
    return { id, vector: Float32Array.from(index.getPoint(label)), metadata: toStoredMetadata(doc, label), label };
  });
  if (new Set(records.map((r) => r.id)).size !== records.length) {
    throw new InvalidArgumentError('documents in docstore.json share ids; give them distinct ids before migrating');
  }

  const { collectionName, tenant, M, efConstruction, space: _unused, ...storeOptions } = target;
  const name = tenant === undefined ? (collectionName ?? 'langchain') : `${tenant}.${collectionName ?? 'langchain'}`;
  const handle = await acquireStore({ ...storeOptions, create: true });
  try {
    const store = handle.store;
    const existing = store.listCollections().find((c) => c.name === name);
    if (existing && (existing.dim !== dim || existing.space !== space || existing.tenant !== tenant)) {
      throw new InvalidArgumentError(`collection "${name}" exists with another dimension, space or tenant`);
    }
    const collection = existing
      ? store.collection(name)
      : await store.createCollection(name, {
          dim,
          space: space as Space,
          ...(tenant === undefined ? {} : { tenant }),
          ...(M === undefined ? {} : { M }),
          ...(efConstruction === undefined ? {} : { efConstruction }),
        });
    for (let i = 0; i < records.length; i += BATCH) {
      await collection.upsert(records.slice(i, i + BATCH).map(({ id, vector, metadata }) => ({ id, vector, metadata })));
    }
    await collection.flush();
    for (const r of records) {
      const got = collection.get(r.id);
      if (!got || !sameVector(got.vector, r.vector) || JSON.stringify(got.metadata) !== JSON.stringify(r.metadata)) {
        throw new CorruptDataError(`document with label ${r.label} did not read back identical from the store`, { reason: 'verify' });
      }
    }
    const present = new Set(await fs.readdir(src));
    return {
      source: src,
      dir: store.dir,
      collection: name,
      documents: records.length,
      deletable: HNSWLIB_FILES.filter((f) => present.has(f)).map((f) => join(src, f)),
      otherFiles: [...present]
        .filter((f) => !(HNSWLIB_FILES as readonly string[]).includes(f))
        .sort()
        .map((f) => join(src, f)),
    };
  } finally {
    await handle.release();
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new NotFoundError(`cannot read ${file}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CorruptDataError('not valid JSON', { file, reason: 'decode' });
  }
}

/** docstore.json: an array of [label, document] pairs. */
function docstoreOf(value: unknown, file: string): Map<string, SourceDoc> {
  if (!Array.isArray(value)) throw new CorruptDataError('docstore.json is not an array of entries', { file, reason: 'decode' });
  const out = new Map<string, SourceDoc>();
  value.forEach((entry: unknown, i) => {
    const doc = Array.isArray(entry) ? (entry[1] as unknown) : undefined;
    if (
      !Array.isArray(entry) ||
      entry.length !== 2 ||
      typeof entry[0] !== 'string' ||
      doc === null ||
      typeof doc !== 'object' ||
      typeof (doc as SourceDoc).pageContent !== 'string'
    ) {
      throw new CorruptDataError(`docstore.json entry ${i} is not a [label, document] pair`, { file, reason: 'decode' });
    }
    out.set(entry[0], doc as SourceDoc);
  });
  return out;
}

function sameVector(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
