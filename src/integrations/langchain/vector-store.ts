import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { Document, type DocumentInterface } from '@langchain/core/documents';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import { SaveableVectorStore } from '@langchain/core/vectorstores';
import { InvalidArgumentError, NotFoundError, UnsupportedOperationError } from '../../errors.js';
import type { Collection } from '../../store/collection.js';
import type { Space } from '../../store/layer.js';
import type { Metadata } from '../../store/metadata.js';
import type { OpenStoreOptions, Store } from '../../store/store.js';
import { acquireStore, type StoreHandle } from '../open-stores.js';
import { toStoredMetadata, toStoreFilter, type VectorsealFilter } from './records.js';

/** Where the documents go inside an open store. */
export interface VectorsealCollectionArgs {
  /** Collection name (default "langchain"); with `tenant`, the collection is `<tenant>.<collectionName>`. */
  collectionName?: string;
  /** One collection per tenant: the tenant's own collection, keyed under the tenant (its own KEK if it has one). */
  tenant?: string;
  /** Distance of a new collection (default 'cosine', as LangChain's HNSWLib). */
  space?: Space;
  /** HNSW links per node of a new collection. */
  M?: number;
  /** HNSW build breadth of a new collection. */
  efConstruction?: number;
}

/** The constructor's arguments: an open store and where in it. */
export interface VectorsealStoreArgs extends VectorsealCollectionArgs {
  store: Store;
}

/**
 * What `fromTexts`, `fromDocuments`, `open` and `load` take: the store
 * directory, the store's own options (`keys`, `providers`, `stagingDir`, ...,
 * passed to `openStore` as they are) and the collection.
 */
export interface VectorsealLibArgs extends Omit<OpenStoreOptions, 'dir' | 'create'>, VectorsealCollectionArgs {
  dir: string;
}

const DEFAULT_COLLECTION = 'langchain';

/**
 * A LangChain vector store whose documents live in a vectorseal collection:
 * vectors, ids, `pageContent` and metadata are encrypted at rest, and the
 * graph is an HNSW index as in LangChain's HNSWLib store, whose API this
 * follows (`fromTexts`, `fromDocuments`, `load`, `save`, distances as
 * scores). Filters are vectorseal's filter object over the metadata, or a
 * function of the document as with HNSWLib; both are applied inside the
 * HNSW search.
 */
export class VectorsealVectorStore extends SaveableVectorStore {
  declare FilterType: VectorsealFilter | ((doc: Document) => boolean);

  /** The vectorseal store (for `rotateKek`, tenants, backups...). */
  readonly store: Store;
  readonly collectionName: string;
  readonly tenant: string | undefined;
  private readonly args: VectorsealCollectionArgs;
  private collection: Collection | undefined;
  private creating: Promise<Collection> | undefined;
  private handle: StoreHandle | undefined;

  _vectorstoreType(): string {
    return 'vectorseal';
  }

  constructor(embeddings: EmbeddingsInterface, args: VectorsealStoreArgs) {
    super(embeddings, {});
    if (args === null || typeof args !== 'object' || args.store === undefined)
      throw new InvalidArgumentError('"args.store" expected an open vectorseal store');
    this.store = args.store;
    this.args = { ...args };
    this.tenant = args.tenant;
    this.collectionName = collectionNameOf(args);
    const existing = this.store.listCollections().find((c) => c.name === this.collectionName);
    if (existing) {
      if (existing.tenant !== args.tenant) {
        throw new InvalidArgumentError(
          `collection "${this.collectionName}" belongs to ` +
            `${existing.tenant === undefined ? 'no tenant' : `tenant "${existing.tenant}"`}, ` +
            `not to ${args.tenant === undefined ? 'no tenant' : `tenant "${args.tenant}"`}`,
        );
      }
      this.collection = this.store.collection(this.collectionName);
    }
  }

  /** Opens (creating when needed) the store in `config.dir`; close it with {@link close}. */
  static async open(embeddings: EmbeddingsInterface, config: VectorsealLibArgs): Promise<VectorsealVectorStore> {
    return this.openWith(embeddings, config, true);
  }

  /**
   * Opens an existing store and collection, as HNSWLib.load does with a
   * saved directory; NotFoundError when either is missing.
   */
  static override async load(
    directory: string,
    embeddings: EmbeddingsInterface,
    config: Omit<VectorsealLibArgs, 'dir'> = {},
  ): Promise<VectorsealVectorStore> {
    const vs = await this.openWith(embeddings, { ...config, dir: directory }, false);
    if (!vs.collection) {
      await vs.close();
      throw new NotFoundError(`no collection "${vs.collectionName}" in the store at ${resolve(directory)}`);
    }
    return vs;
  }

  static override async fromTexts(
    texts: string[],
    metadatas: object[] | object,
    embeddings: EmbeddingsInterface,
    config: VectorsealLibArgs,
  ): Promise<VectorsealVectorStore> {
    if (!Array.isArray(texts)) throw new InvalidArgumentError('"texts" expected an array of strings');
    const docs = texts.map(
      (pageContent, i) =>
        new Document({ pageContent, metadata: ((Array.isArray(metadatas) ? metadatas[i] : metadatas) as Record<string, unknown>) ?? {} }),
    );
    return this.fromDocuments(docs, embeddings, config);
  }

  static override async fromDocuments(
    docs: DocumentInterface[],
    embeddings: EmbeddingsInterface,
    config: VectorsealLibArgs,
  ): Promise<VectorsealVectorStore> {
    const vs = await this.open(embeddings, config);
    try {
      await vs.addDocuments(docs);
    } catch (err) {
      await vs.close();
      throw err;
    }
    return vs;
  }

  private static async openWith(
    embeddings: EmbeddingsInterface,
    config: VectorsealLibArgs,
    create: boolean,
  ): Promise<VectorsealVectorStore> {
    if (config === null || typeof config !== 'object' || typeof config.dir !== 'string') {
      throw new InvalidArgumentError('"dir" expected the directory of the vectorseal store');
    }
    const { collectionName, tenant, space, M, efConstruction, ...storeOptions } = config;
    const handle = await acquireStore({ ...storeOptions, create });
    try {
      const vs = new this(embeddings, {
        store: handle.store,
        ...defined({ collectionName, tenant, space, M, efConstruction }),
      });
      vs.handle = handle;
      return vs;
    } catch (err) {
      await handle.release();
      throw err;
    }
  }

  /** The same store, bound to `tenant`'s own collection (created, keyed under the tenant, on first write). */
  forTenant(tenant: string): VectorsealVectorStore {
    const { tenant: _ignored, ...rest } = this.args;
    return new VectorsealVectorStore(this.embeddings, { ...rest, store: this.store, tenant });
  }

  override async addDocuments(documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]> {
    if (!Array.isArray(documents)) throw new InvalidArgumentError('"documents" expected an array');
    documents.forEach((d, i) => {
      if (d === null || typeof d !== 'object' || typeof d.pageContent !== 'string')
        throw new InvalidArgumentError(`documents[${i}]: "pageContent" expected a string`);
    });
    if (documents.length === 0) return [];
    const vectors = await this.embeddings.embedDocuments(documents.map((d) => d.pageContent));
    return this.addVectors(vectors, documents, options);
  }

  /** Upserts: a document whose id exists replaces it. Ids: `options.ids`, else each document's `id`, else new UUIDs. */
  override async addVectors(vectors: number[][], documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]> {
    if (!Array.isArray(vectors) || !Array.isArray(documents) || vectors.length !== documents.length) {
      throw new InvalidArgumentError('"vectors" and "documents" expected arrays of the same length');
    }
    const ids = options?.ids;
    if (ids !== undefined && (!Array.isArray(ids) || ids.length !== documents.length)) {
      throw new InvalidArgumentError(`"ids" expected ${documents.length} ids, got ${Array.isArray(ids) ? ids.length : typeof ids}`);
    }
    if (documents.length === 0) return [];
    const first = vectors[0];
    if (first === undefined || (!Array.isArray(first) && !((first as unknown) instanceof Float32Array)))
      throw new InvalidArgumentError('vectors[0] expected an array of numbers');
    const collection = await this.ensureCollection(first.length);
    const records = documents.map((doc, i) => ({
      id: ids?.[i] ?? (typeof doc.id === 'string' && doc.id.length > 0 ? doc.id : randomUUID()),
      vector: vectors[i] as number[],
      metadata: toStoredMetadata(doc, i),
    }));
    await collection.upsert(records);
    return records.map((r) => r.id);
  }

  /**
   * The k nearest documents with their distance (as HNSWLib: cosine
   * distance for 'cosine', squared L2 for 'l2', 1 - dot product for 'ip';
   * smaller is closer).
   */
  async similaritySearchVectorWithScore(query: number[], k: number, filter?: this['FilterType']): Promise<[Document, number][]> {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1)
      throw new InvalidArgumentError(`"k" expected a positive integer, got ${typeof k === 'number' ? k : typeof k}`);
    const c = this.collection;
    if (!c || c.count === 0) return [];
    // As HNSWLib: a k beyond the number of documents asks for all of them.
    const n = Math.min(k, c.count);
    const hits = c.search(query, n, searchFilter(filter));
    const l2 = c.info.space === 'l2';
    return hits.map((h) => [toDocument(h.id, h.metadata), l2 ? h.score : 1 - h.score]);
  }

  /** Deletes documents by id (`{ ids }`). */
  override async delete(params?: { ids?: string[] }): Promise<void> {
    const ids = params?.ids;
    if (!Array.isArray(ids)) throw new InvalidArgumentError('"delete" expected { ids: string[] }');
    if (!this.collection || ids.length === 0) return;
    await this.collection.delete(ids);
  }

  /**
   * Makes everything written so far durable in segments (writes are durable
   * in the encrypted WAL as soon as they resolve). A vectorseal store lives
   * where it was opened: `directory`, when given, must be that directory.
   */
  async save(directory?: string): Promise<void> {
    if (directory !== undefined && resolve(directory) !== this.store.dir) {
      throw new UnsupportedOperationError(
        `this store lives in ${this.store.dir} and is saved there (use backupStore to copy it elsewhere)`,
      );
    }
    await this.collection?.flush();
  }

  /** Closes the store if this instance opened it (open, load, fromTexts, fromDocuments); flushes first. */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.release();
  }

  /** Number of documents. */
  get count(): number {
    return this.collection?.count ?? 0;
  }

  private async ensureCollection(dim: number): Promise<Collection> {
    if (this.collection) return this.collection;
    if (!this.creating) {
      const existing = this.store.listCollections().find((c) => c.name === this.collectionName);
      this.creating = existing
        ? Promise.resolve(this.store.collection(this.collectionName))
        : this.store.createCollection(this.collectionName, {
            dim,
            space: this.args.space ?? 'cosine',
            ...defined({ tenant: this.tenant, M: this.args.M, efConstruction: this.args.efConstruction }),
          });
      this.creating.catch(() => {
        this.creating = undefined;
      });
    }
    this.collection = await this.creating;
    return this.collection;
  }
}

function collectionNameOf(args: VectorsealCollectionArgs): string {
  const base = args.collectionName ?? DEFAULT_COLLECTION;
  if (typeof base !== 'string') throw new InvalidArgumentError('"collectionName" expected a string');
  if (args.tenant === undefined) return base;
  if (typeof args.tenant !== 'string' || args.tenant.length === 0) throw new InvalidArgumentError('"tenant" expected a non-empty string');
  return `${args.tenant}.${base}`;
}

function searchFilter(filter: unknown): { filter?: Record<string, unknown>; where?: (m: Metadata | undefined, id: string) => boolean } {
  if (filter === undefined || filter === null) return {};
  if (typeof filter === 'function') {
    const fn = filter as (doc: Document) => unknown;
    return { where: (m, id) => fn(toDocument(id, m, false)) === true };
  }
  return { filter: toStoreFilter(filter) };
}

/** A document from a stored record; a copy of the metadata unless `copy` is false (a filter's read-only view). */
function toDocument(id: string, stored: Metadata | undefined, copy = true): Document {
  const text = stored?.['c'];
  const meta = stored?.['m'];
  const metadata = meta !== null && typeof meta === 'object' ? (copy ? structuredClone(meta) : meta) : {};
  return new Document({ pageContent: typeof text === 'string' ? text : '', metadata: metadata as Record<string, unknown>, id });
}

function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
