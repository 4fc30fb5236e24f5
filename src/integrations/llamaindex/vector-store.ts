import type { BaseEmbedding } from '@llamaindex/core/embeddings';
import type { BaseNode } from '@llamaindex/core/schema';
import {
  BaseVectorStore,
  VectorStoreQueryMode,
  metadataDictToNode,
  nodeToMetadata,
  type VectorStoreQuery,
  type VectorStoreQueryResult,
} from '@llamaindex/core/vector-store';
import { InvalidArgumentError, UnsupportedOperationError } from '../../errors.js';
import type { Collection } from '../../store/collection.js';
import type { Space } from '../../store/layer.js';
import type { Metadata } from '../../store/metadata.js';
import type { OpenStoreOptions, Store } from '../../store/store.js';
import { acquireStore, type StoreHandle } from '../open-stores.js';
import { compileMetadataFilters } from './filters.js';

/** Where the nodes go inside an open store. */
export interface VectorsealNodeCollectionArgs {
  /** Collection name (default "llamaindex"); with `tenant`, the collection is `<tenant>.<collectionName>`. */
  collectionName?: string;
  /** One collection per tenant, keyed under the tenant (its own KEK if it has one). */
  tenant?: string;
  /** Distance of a new collection (default 'cosine'). */
  space?: Space;
  /** The embedding model LlamaIndex uses with this store (default: Settings.embedModel). */
  embedModel?: BaseEmbedding;
}

export interface VectorsealNodeStoreArgs extends VectorsealNodeCollectionArgs {
  store: Store;
}

/** What {@link VectorsealNodeStore.open} takes: the store directory, the store's own options (keys, ...) and the collection. */
export interface VectorsealNodeStoreOpenArgs extends Omit<OpenStoreOptions, 'dir' | 'create'>, VectorsealNodeCollectionArgs {
  dir: string;
  /** Create the store when the directory holds none (default true). */
  create?: boolean;
}

const DEFAULT_COLLECTION = 'llamaindex';

/**
 * A LlamaIndex.TS vector store over a vectorseal collection. Each node is one
 * record: its embedding is the vector, and its text, metadata and
 * relationships (LlamaIndex's own flat node dictionary) are the record's
 * encrypted metadata, so the store keeps the text (`storesText`) and
 * `VectorStoreIndex.fromVectorStore` works without a document store.
 * Filters (every FilterOperator, AND/OR) run inside the HNSW search.
 */
export class VectorsealNodeStore extends BaseVectorStore<Store> {
  storesText = true;
  readonly store: Store;
  readonly collectionName: string;
  readonly tenant: string | undefined;
  private readonly space: Space;
  private collection: Collection | undefined;
  private creating: Promise<Collection> | undefined;
  private handle: StoreHandle | undefined;

  constructor(args: VectorsealNodeStoreArgs) {
    if (args === null || typeof args !== 'object' || args.store === undefined)
      throw new InvalidArgumentError('"args.store" expected an open vectorseal store');
    super(args.embedModel === undefined ? undefined : { embedModel: args.embedModel });
    this.store = args.store;
    this.tenant = args.tenant;
    this.space = args.space ?? 'cosine';
    const base = args.collectionName ?? DEFAULT_COLLECTION;
    if (typeof base !== 'string') throw new InvalidArgumentError('"collectionName" expected a string');
    if (args.tenant !== undefined && (typeof args.tenant !== 'string' || args.tenant.length === 0))
      throw new InvalidArgumentError('"tenant" expected a non-empty string');
    this.collectionName = args.tenant === undefined ? base : `${args.tenant}.${base}`;
    const existing = this.store.listCollections().find((c) => c.name === this.collectionName);
    if (existing) {
      if (existing.tenant !== args.tenant) throw new InvalidArgumentError(`collection "${this.collectionName}" belongs to another tenant`);
      this.collection = this.store.collection(this.collectionName);
    }
  }

  /** Opens (by default creating) the store in `args.dir`; close it with {@link close}. */
  static async open(args: VectorsealNodeStoreOpenArgs): Promise<VectorsealNodeStore> {
    if (args === null || typeof args !== 'object' || typeof args.dir !== 'string')
      throw new InvalidArgumentError('"dir" expected the directory of the vectorseal store');
    const { collectionName, tenant, space, embedModel, create, ...storeOptions } = args;
    const handle = await acquireStore({ ...storeOptions, create: create ?? true });
    try {
      const vs = new VectorsealNodeStore({
        store: handle.store,
        ...(collectionName === undefined ? {} : { collectionName }),
        ...(tenant === undefined ? {} : { tenant }),
        ...(space === undefined ? {} : { space }),
        ...(embedModel === undefined ? {} : { embedModel }),
      });
      vs.handle = handle;
      return vs;
    } catch (err) {
      await handle.release();
      throw err;
    }
  }

  client(): Store {
    return this.store;
  }

  /** Upserts nodes (by node id); each must carry its embedding. */
  async add(nodes: BaseNode[]): Promise<string[]> {
    if (!Array.isArray(nodes)) throw new InvalidArgumentError('"nodes" expected an array');
    if (nodes.length === 0) return [];
    const records = nodes.map((node, i) => {
      const vector = node?.embedding;
      if (!Array.isArray(vector) || vector.length === 0)
        throw new InvalidArgumentError(`nodes[${i}] has no embedding (embed the nodes first)`);
      return { id: node.id_, vector, metadata: storedOf(node, i) };
    });
    const collection = await this.ensureCollection(records[0]!.vector.length);
    await collection.upsert(records);
    return records.map((r) => r.id);
  }

  /** Deletes every node of the source document `refDocId` (a scan of the collection's records). */
  async delete(refDocId: string): Promise<void> {
    if (typeof refDocId !== 'string' || refDocId.length === 0) throw new InvalidArgumentError('"refDocId" expected a non-empty string');
    const c = this.collection;
    if (!c) return;
    const doomed = c.ids().filter((id) => own(c.get(id)?.metadata, 'ref_doc_id') === refDocId);
    if (doomed.length > 0) await c.delete(doomed);
  }

  /**
   * The `similarityTopK` nearest nodes to `queryEmbedding` that pass
   * `filters` (and are among `docIds`, when given). Similarities: cosine
   * similarity for 'cosine', dot product for 'ip', 1 / (1 + squared
   * distance) for 'l2'. Only the default (dense) mode is supported.
   */
  async query(query: VectorStoreQuery): Promise<VectorStoreQueryResult> {
    if (query === null || typeof query !== 'object') throw new InvalidArgumentError('"query" expected a VectorStoreQuery');
    if (query.mode !== undefined && query.mode !== VectorStoreQueryMode.DEFAULT) {
      throw new UnsupportedOperationError(`query mode "${String(query.mode).slice(0, 32)}" is not supported (only "default")`);
    }
    if (!Array.isArray(query.queryEmbedding)) throw new InvalidArgumentError('"queryEmbedding" expected an array of numbers');
    const topK = query.similarityTopK;
    if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1)
      throw new InvalidArgumentError(`"similarityTopK" expected a positive integer, got ${typeof topK === 'number' ? topK : typeof topK}`);
    const test = compileMetadataFilters(query.filters);
    if (query.docIds !== undefined && !Array.isArray(query.docIds)) throw new InvalidArgumentError('"docIds" expected an array of ids');
    const docIds = query.docIds === undefined ? undefined : new Set(query.docIds);
    const c = this.collection;
    if (!c || c.count === 0) return { nodes: [], similarities: [], ids: [] };
    const where =
      test === undefined && docIds === undefined
        ? undefined
        : (m: Metadata | undefined, id: string) => (docIds === undefined || docIds.has(id)) && (test === undefined || test(m ?? {}));
    const hits = c.search(query.queryEmbedding, Math.min(topK, c.count), where === undefined ? {} : { where });
    const l2 = c.info.space === 'l2';
    return {
      ids: hits.map((h) => h.id),
      similarities: hits.map((h) => (l2 ? 1 / (1 + h.score) : h.score)),
      nodes: hits.map((h) => metadataDictToNode(structuredClone(h.metadata ?? {}) as Record<string, unknown>)),
    };
  }

  /** Makes everything written so far durable in segments (writes are already durable in the encrypted WAL). */
  async persist(): Promise<void> {
    await this.collection?.flush();
  }

  /** Closes the store if this instance opened it ({@link open}); flushes first. */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.release();
  }

  get count(): number {
    return this.collection?.count ?? 0;
  }

  private async ensureCollection(dim: number): Promise<Collection> {
    if (this.collection) return this.collection;
    if (!this.creating) {
      const exists = this.store.listCollections().some((c) => c.name === this.collectionName);
      this.creating = exists
        ? Promise.resolve(this.store.collection(this.collectionName))
        : this.store.createCollection(this.collectionName, {
            dim,
            space: this.space,
            ...(this.tenant === undefined ? {} : { tenant: this.tenant }),
          });
      this.creating.catch(() => {
        this.creating = undefined;
      });
    }
    this.collection = await this.creating;
    return this.collection;
  }
}

function own(m: Metadata | undefined, key: string): unknown {
  return m !== undefined && Object.hasOwn(m, key) ? m[key] : undefined;
}

/** A node's stored form: LlamaIndex's flat node dictionary (text inside), kept as JSON would keep it. */
function storedOf(node: BaseNode, i: number): Metadata {
  let dict: unknown;
  try {
    dict = JSON.parse(JSON.stringify(nodeToMetadata(node)));
  } catch {
    // The cause is left out: its message can quote metadata.
    throw new InvalidArgumentError(`nodes[${i}]: metadata does not serialize as JSON (a cycle, a BigInt or a getter that throws)`);
  }
  return dict as Metadata;
}
