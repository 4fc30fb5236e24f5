import type { KeyManager } from '../keys/key-manager.js';
import type { ManifestData } from '../storage/manifest.js';
import type { Staging } from '../storage/staging.js';
import type { CollectionInfo } from './catalog.js';
import type { Filter } from './filter.js';
import type { Space } from './layer.js';
import type { Logger } from './logger.js';
import type { Metadata } from './metadata.js';
import type { StoreState } from './state.js';

/** A record as callers give it. */
export interface VectorRecord<M extends object = Metadata> {
  id: string;
  vector: Float32Array | number[];
  metadata?: M;
}

/** A stored record as `get` returns it. */
export interface StoredRecord<M extends object = Metadata> {
  id: string;
  /** A copy: the caller's to keep or modify. */
  vector: Float32Array;
  /** The stored metadata itself, deeply frozen: read-only (copy it to change it). */
  metadata: M | undefined;
}

export interface SearchOptions<M extends object = Metadata> {
  /** Metadata conditions, all of which must hold (see filter.ts). */
  filter?: Filter<M>;
  /** HNSW search breadth; larger is slower and more exact. Default max(64, k). */
  ef?: number;
  /**
   * A predicate on the stored (read-only) metadata and id, applied inside the
   * HNSW search like `filter` (both must hold when both are given): for
   * conditions the filter language cannot say (OR, array containment, ...).
   * An error it throws ends the search with that error.
   */
  where?: (metadata: Metadata | undefined, id: string) => boolean;
}

/**
 * One search hit. `score` is the squared Euclidean distance for 'l2' (smaller
 * is closer) and the similarity for 'ip' (dot product) and 'cosine' (cosine
 * similarity), where larger is closer. Results are ordered closest first.
 */
export interface SearchResult<M extends object = Metadata> {
  id: string;
  score: number;
  /** The stored metadata itself, deeply frozen: read-only (copy it to change it). */
  metadata: M | undefined;
}

export interface CollectionStats {
  name: string;
  id: string;
  dim: number;
  space: Space;
  tenant: string | undefined;
  /** Live records. */
  count: number;
  /** Live records not yet flushed into segments. */
  unflushed: number;
  /** Segment groups (one per flush or compaction). */
  segments: number;
  segmentFiles: number;
  segmentBytes: number;
  /** Deleted or superseded records still held in segments (compaction drops them). */
  deadRecords: number;
  generation: number;
  dekVersion: number;
  /**
   * False for a collection opened lazily and not loaded yet: count is then the
   * records its segment groups held when written (newer groups' updates and
   * deletes, and the WAL, not applied) and unflushed is 0.
   */
  loaded: boolean;
  /** What the last flush of this session cost, step by step (absent before the first). */
  lastFlush?: FlushTimings;
}

/** The steps of one flush, in seconds of wall clock. */
export interface FlushTimings {
  /** Records written. */
  records: number;
  /**
   * Assembling the new layer and building its HNSW graph: on two native threads (the native backend), or on the
   * worker thread with its one serialization to the staging file (the hnswlib-node fallback).
   */
  graphSeconds: number;
  /** Serializing the graph to memory (native), sealing and writing the group's segment files until they are durable. */
  writeSeconds: number;
  /** The fallback only: loading the staged graph into the caller's thread (beside the writes); 0 on the native path. */
  loadSeconds: number;
  /**
   * Whether the graph was the memtable's, grown in the background while records arrived (graphSeconds is then
   * only its catching up); false when the flush built it.
   */
  grownGraph: boolean;
}

export interface CompactionReport {
  /** Segment groups merged. */
  merged: number;
  /** Records kept. */
  records: number;
  /** Dead records dropped. */
  dropped: number;
}

/** A consistent set of a collection's files (see Collection.snapshot). */
export interface CollectionCut {
  dir: string;
  manifest: ManifestData;
  firstWalSeq: number;
  lastWalSeq: number;
  /** A reader's cut: the manifest file it loaded (the one on disk may be newer). */
  manifestBytes?: Buffer;
  /** A reader's cut: how many bytes of each WAL file its snapshot holds (the writer may be appending). */
  walLengths?: ReadonlyMap<number, number>;
  /** The SHA-256 and length the store state sealed WAL files with, where the cut knows it (a lazy cut, collection-cut.ts). */
  walHashes?: ReadonlyMap<number, { sha256: string; length: number }>;
}

/** What a collection needs from its store. */
export interface CollectionContext {
  storeId: string;
  /** The store directory. */
  storeDir: string;
  keys: KeyManager;
  staging: Staging;
  logger: Logger;
  durability: 'batch' | 'none';
  /** Segment groups beyond which a flush compacts automatically. */
  maxSegments: number;
  /** Unflushed records beyond which a flush starts in the background (0: never). */
  autoFlushRecords: number;
  /** Told of every refused operation (the store audits it as 'denied'). */
  onDenied?: (info: CollectionInfo, operation: string, err: unknown) => void;
  /** Told of pages sealed under the active DEK (for page-limit rotation policies). */
  notePages?: (info: CollectionInfo, pages: number) => Promise<void>;
  /** The store's authenticated state: manifests and WAL files are announced in it before they appear. */
  state: StoreState;
  /** A reader's collection (see reader.ts): loaded from a snapshot, never writes a file. */
  readOnly?: boolean;
  /** The store was opened with `lazy`: a collection enabled again reads only its manifest until first use. */
  lazy?: boolean;
  /** Removes files a committed manifest no longer lists, after the grace period readers get (default: at once). */
  retire?: (paths: string[]) => Promise<void>;
  /** Removes now the retired files under a directory (before the DEK versions they use are destroyed). */
  removeRetiredUnder?: (dir: string) => Promise<void>;
}
