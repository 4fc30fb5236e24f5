import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CHUNK_SIZE } from '../crypto/chunked.js';
import { ClosedError, CorruptDataError, errorCode, InvalidArgumentError, KeyDestroyedError, KeyDisabledError, KeyPendingDeletionError, RollbackError, VectorsealError } from '../errors.js';
import type { KeyManager } from '../keys/key-manager.js';
import type { DekLease } from '../keys/dek-cache.js';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  readManifest,
  segmentFile,
  writeManifest,
  type ManifestData,
  type SegmentFileEntry,
  type SegmentGroup,
} from '../storage/manifest.js';
import { SegmentKind, SegmentReader, readSegment, writeSegment, type DekLookup } from '../storage/segment.js';
import type { Staging } from '../storage/staging.js';
import { WalWriter, listWalFiles, readWal, readWalHeader, truncateWal, walFileName } from '../storage/wal.js';
import { mkdirDurable } from '../storage/fsutil.js';
import { STATE_FILE, checkManifestState, type StoreState, type WalSeal } from './state.js';
import { crashPoint } from '../util/crash.js';
import { decodeList, decodeVectorBlock, encodeList, encodeVectorBlock } from './blocks.js';
import type { CollectionInfo } from './catalog.js';
import { compileFilter, type Filter } from './filter.js';
import { deserializeIndex, withSerializedIndex } from './index-io.js';
import { Journal } from './journal.js';
import { Layer, newIndex, type IndexParams, type LayerHits, type Space } from './layer.js';
import type { Logger } from './logger.js';
import { pack, readOnly, unpack, type Metadata } from './metadata.js';
import { checkId, checkPositiveInt, toVector } from './validate.js';
import { checkBatch, checkUpdates, type CheckedUpdate, type MetadataUpdate } from './records.js';
import { countWhere, deleteWhere, getMany, list, records, searchMany, type ListOptions, type RecordPage } from './query-api.js';
import { dekVersionsInUse, rewriteSegmentGroup, segmentDekVersion, walDekVersions, type ReencryptionProgress, type ReencryptionReport } from './reencrypt.js';
import { SerialQueue } from '../util/serial-queue.js';

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
}

export interface CompactionReport {
  /** Segment groups merged. */
  merged: number;
  /** Records kept. */
  records: number;
  /** Dead records dropped. */
  dropped: number;
}

/** A consistent set of a collection's files (see {@link Collection.snapshot}). */
export interface CollectionCut {
  dir: string;
  manifest: ManifestData;
  firstWalSeq: number;
  lastWalSeq: number;
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
}

type Op =
  | { t: 'u'; r: [string, Uint8Array, Uint8Array | null][] }
  | { t: 'd'; ids: string[] }
  /** Metadata replaced, vector kept (the vector is taken when the record is applied, so no write in between is lost). */
  | { t: 'm'; r: [string, Uint8Array | null][] };

const MAX_K = 10_000;
const MAX_BATCH = 1_000_000;
const YIELD_EVERY = 2_000;

/**
 * A collection: an HNSW memtable backed by the encrypted WAL, plus immutable
 * encrypted segment groups listed by a sealed manifest. Everything searchable
 * is in memory once open; only writes, flushes and compactions touch keys.
 */
export class Collection<M extends object = Metadata> {
  private segments: Layer[] = [];
  /** The memtable being flushed (or left by a flush that failed). */
  private frozen: Layer | undefined;
  /** First WAL file not covered by the frozen memtable. */
  private frozenWalSeq = 0;
  /** Sequence number the next WAL file gets (files are created on the first append after one ends). */
  private walNext = 1;
  /** Seals of WAL files ended since the last one was announced in the store state. */
  private unannounced: WalSeal[] = [];
  private memtable: Layer;
  private readonly current = new Map<string, { layer: Layer; label: number }>();
  private manifest!: ManifestData;
  private journal!: Journal;
  private readonly exclusiveQueue = new SerialQueue();
  private closed = false;
  /** The automatic flush under way, if any. */
  private autoFlushing: Promise<void> | undefined;
  /** False while the collection's keys are refused: its data is dropped from memory until enabled. */
  private loaded = false;
  /** Why the last re-validation of the DEK failed (a KEK disabled in its provider); cleared by a good one. */
  private keyFailure: unknown;
  private revalidation: Promise<void> | undefined;
  readonly dir: string;
  private readonly params: IndexParams;

  private constructor(
    private readonly ctx: CollectionContext,
    readonly info: CollectionInfo,
  ) {
    this.dir = collectionDir(ctx.storeDir, info.id);
    this.params = { space: info.space, dim: info.dim, M: info.M, efConstruction: info.efConstruction };
    this.memtable = this.newMemtable();
  }

  /** Creates the files of a new collection (its keys must exist) and opens it. */
  static async create(ctx: CollectionContext, info: CollectionInfo): Promise<Collection> {
    const dir = collectionDir(ctx.storeDir, info.id);
    // Each new directory entry is fsynced, so a crash cannot leave a manifest in a directory that vanished.
    await mkdirDurable(join(dir, 'wal'));
    await mkdirDurable(join(dir, 'seg'));
    const c = new Collection(ctx, info);
    const version = ctx.keys.activeDekVersion(info.id);
    const initial = c.initialManifest();
    await ctx.keys.withDek(info.id, version, (dek) =>
      writeManifest(dir, ctx.storeId, initial, dek, version, async (ref) => {
        ctx.state.entry(info.id);
        await ctx.state.announceManifest(info.id, ref);
      }),
    );
    return Collection.open(ctx, info);
  }

  /**
   * Opens a collection: checks the manifest, loads its segments, replays the
   * WAL. A collection whose keys are refused (disabled, its tenant disabled or
   * scheduled for deletion) opens unloaded and loads once enabled.
   */
  static async open(ctx: CollectionContext, info: CollectionInfo): Promise<Collection> {
    const c = new Collection(ctx, info);
    try {
      ctx.keys.assertUsable(info.id);
    } catch (err) {
      if (isRefusal(err)) return c;
      throw err;
    }
    await c.load();
    c.loaded = true;
    return c;
  }

  get name(): string {
    return this.info.name;
  }

  /**
   * Inserts or replaces records. The batch is checked whole first (nothing is
   * applied if any record is bad), then written to the WAL; the promise
   * resolves once it is durable and visible.
   */
  async upsert(records: VectorRecord<M>[] | VectorRecord<M>): Promise<void> {
    await this.admit('upsert');
    const list = Array.isArray(records) ? records : [records];
    if (list.length === 0) return;
    if (list.length > MAX_BATCH) throw new InvalidArgumentError(`"records" expected at most ${MAX_BATCH} records, got ${list.length}`);
    const checked = checkBatch(list, this.info.dim, this.info.space);
    const op: Op = {
      t: 'u',
      r: checked.map((c) => [c.id, new Uint8Array(c.vector.buffer, c.vector.byteOffset, c.vector.byteLength), c.meta]),
    };
    const payload = pack(op);
    for (const c of checked) c.meta?.fill(0);
    await this.journal.append(payload, () => this.applyUpsert(checked));
    this.maybeAutoFlush();
  }

  /**
   * Starts a flush in the background once the unflushed records pass the
   * store's threshold, so the WAL (and its replay on open) stays bounded.
   * Acknowledged writes are already durable in the WAL: a failed automatic
   * flush loses nothing and is logged; the next write or close tries again.
   */
  private maybeAutoFlush(): void {
    const limit = this.ctx.autoFlushRecords;
    if (limit <= 0 || this.autoFlushing || this.closed || this.memtable.live < limit) return;
    this.autoFlushing = this.flush()
      .catch((err: unknown) => this.ctx.logger.warn({ err: errorCode(err) }, 'automatic flush failed'))
      .finally(() => {
        this.autoFlushing = undefined;
      });
  }

  /** Deletes records by id; resolves with how many existed, once durable. */
  async delete(ids: string[] | string): Promise<number> {
    await this.admit('delete');
    const list = Array.isArray(ids) ? ids : [ids];
    list.forEach((id, i) => checkId(id, `ids[${i}]`));
    const unique = [...new Set(list)];
    if (unique.length === 0) return 0;
    let deleted = 0;
    await this.journal.append(pack({ t: 'd', ids: unique } satisfies Op), () => {
      deleted = this.applyDelete(unique);
    });
    return deleted;
  }

  /** The stored record, or undefined. Served from memory. */
  get(id: string): StoredRecord<M> | undefined {
    this.admitSync('get');
    checkId(id, 'get');
    const loc = this.current.get(id);
    if (!loc) return undefined;
    return {
      id,
      vector: new Float32Array(loc.layer.vectorOf(loc.label)),
      metadata: readOnly(loc.layer.metadata[loc.label]) as M | undefined,
    };
  }

  /** Whether a record exists. */
  has(id: string): boolean {
    this.admitSync('get');
    return this.current.has(id);
  }

  /**
   * The k nearest live records, closest first, across every segment and the
   * memtable. Runs entirely in memory (no file, no key).
   */
  search(vector: Float32Array | number[], k = 10, options: SearchOptions<M> = {}): SearchResult<M>[] {
    this.admitSync('search');
    const q = queryOf(vector, this.info.dim, this.info.space);
    checkPositiveInt(k, 'k', MAX_K);
    const ef = options.ef === undefined ? Math.max(64, k) : checkPositiveInt(options.ef, 'ef', 100_000);
    const accept = acceptOf(options);
    const similarity = this.info.space !== 'l2';
    const segs = this.segments;
    const nLayers = segs.length + (this.frozen ? 2 : 1);
    const layerAt = (i: number): Layer => (i < segs.length ? (segs[i] as Layer) : i === segs.length && this.frozen ? this.frozen : this.memtable);
    // Usually one layer holds every live record (a reopened or compacted collection): no merge.
    let only = -1;
    let several = false;
    for (let i = 0; i < nLayers; i++) {
      if (layerAt(i).live === 0) continue;
      if (only >= 0) several = true;
      else only = i;
    }
    const out: SearchResult<M>[] = [];
    if (only < 0) return out;
    const hit = (layer: Layer, label: number, distance: number): void => {
      out.push({ id: layer.ids[label] as string, score: similarity ? 1 - distance : distance, metadata: readOnly(layer.metadata[label]) as M | undefined });
    };
    if (!several) {
      const layer = layerAt(only);
      const res = layer.search(q, k, ef, accept);
      rethrowPredicateError(accept);
      const { ids, metadata } = layer;
      for (let j = 0; j < res.neighbors.length && out.length < k; j++) {
        const label = res.neighbors[j] as number;
        if (layer.isDead(label)) continue;
        const distance = res.distances[j] as number;
        out.push({ id: ids[label] as string, score: similarity ? 1 - distance : distance, metadata: readOnly(metadata[label]) as M | undefined });
      }
      return out;
    }
    // Each layer's hits come closest first: merge them, k at most.
    const results: LayerHits[] = new Array<LayerHits>(nLayers);
    const at = new Array<number>(nLayers).fill(0);
    for (let i = 0; i < nLayers; i++) results[i] = layerAt(i).search(q, k, ef, accept);
    rethrowPredicateError(accept);
    while (out.length < k) {
      let best = -1;
      let bestDistance = Infinity;
      for (let i = 0; i < nLayers; i++) {
        const r = results[i] as LayerHits;
        const j = at[i] as number;
        if (j < r.neighbors.length && (best < 0 || (r.distances[j] as number) < bestDistance)) {
          best = i;
          bestDistance = r.distances[j] as number;
        }
      }
      if (best < 0) break;
      const r = results[best] as LayerHits;
      const j = at[best] as number;
      at[best] = j + 1;
      const layer = layerAt(best);
      const label = r.neighbors[j] as number;
      if (!layer.isDead(label)) hit(layer, label, bestDistance);
    }
    return out;
  }

  /** Live record count. */
  get count(): number {
    return this.current.size;
  }

  /** Writes the memtable as a new encrypted segment group and commits a manifest. */
  async flush(): Promise<void> {
    await this.admit('flush');
    await this.exclusive(() => this.flushLocked());
  }

  /** Merges every segment group into one, dropping deleted and superseded records. */
  async compact(): Promise<CompactionReport> {
    await this.admit('compact');
    return this.exclusive(async () => {
      await this.flushLocked();
      return this.compactLocked();
    });
  }

  stats(): CollectionStats {
    // A collection opened while its keys were refused has no manifest in memory.
    const files = this.manifest?.groups.flatMap((g) => g.files) ?? [];
    return {
      name: this.info.name,
      id: this.info.id,
      dim: this.info.dim,
      space: this.info.space,
      tenant: this.info.tenant,
      count: this.current.size,
      unflushed: this.memtable.live + (this.frozen?.live ?? 0),
      segments: this.manifest?.groups.length ?? 0,
      segmentFiles: files.length,
      segmentBytes: files.reduce((n, f) => n + f.length, 0),
      deadRecords: this.segments.reduce((n, l) => n + (l.size - l.live), 0),
      generation: this.manifest?.generation ?? 0,
      dekVersion: this.ctx.keys.activeDekVersion(this.info.id),
    };
  }

  /** Every live id (in no particular order). */
  ids(): string[] {
    this.admitSync('get');
    return [...this.current.keys()];
  }

  // ---- the query API (query-api.ts) ----

  /** Several searches in one call, with the same k and options: one result list per query. */
  searchMany(queries: (Float32Array | number[])[], k = 10, options: SearchOptions<M> = {}): SearchResult<M>[][] {
    return searchMany(this, queries, k, options);
  }

  /** The records of `ids`, in order; undefined where an id has no record. */
  getMany(ids: string[]): (StoredRecord<M> | undefined)[] {
    return getMany(this, ids);
  }

  /** Live records whose metadata matches `filter` (all live records without one). */
  countWhere(filter?: Filter<M>): number {
    return countWhere(this, filter);
  }

  /** Deletes the records whose metadata matches `filter` now; resolves with how many, once durable. */
  deleteWhere(filter: Filter<M>): Promise<number> {
    return deleteWhere(this, filter);
  }

  /** One page of records in id order, after the id `after` (see RecordPage.next). */
  list(options: ListOptions<M> & { after?: string } = {}): RecordPage<M> {
    return list(this, options);
  }

  /** Every record with its metadata, in id order, a page at a time (see query-api.ts). */
  records(options: ListOptions<M> = {}): AsyncGenerator<StoredRecord<M>> {
    return records(this, options);
  }

  /** @internal Ids of the live records whose metadata matches `filter` (every id without one). */
  matchingIds(filter?: Filter<M>): string[] {
    this.admitSync('get');
    const accept = filter === undefined ? undefined : compileFilter(filter);
    const out: string[] = [];
    for (const [id, loc] of this.current) if (!accept || accept(loc.layer.metadata[loc.label])) out.push(id);
    return out;
  }

  /**
   * Replaces the metadata of existing records without resending their
   * vectors (`metadata: null` removes it); ids without a record are ignored.
   * Resolves with how many records were updated, once durable.
   */
  async updateMetadata(updates: MetadataUpdate<M>[] | MetadataUpdate<M>): Promise<number> {
    await this.admit('upsert');
    const list = Array.isArray(updates) ? updates : [updates];
    if (list.length === 0) return 0;
    if (list.length > MAX_BATCH) throw new InvalidArgumentError(`"updates" expected at most ${MAX_BATCH} updates, got ${list.length}`);
    const checked = checkUpdates(list);
    const payload = pack({ t: 'm', r: checked.map((c) => [c.id, c.meta]) } satisfies Op);
    for (const c of checked) c.meta?.fill(0);
    let updated = 0;
    await this.journal.append(payload, () => {
      updated = this.applyMetadata(checked);
    });
    this.maybeAutoFlush();
    return updated;
  }

  /**
   * Runs `fn` on a consistent cut of the collection's files, for backups. The
   * current WAL file is closed first (so every write acknowledged before the
   * call is in a closed file) and no flush or compaction runs until `fn`
   * returns: the manifest, the segment files it lists and WAL files
   * `firstWalSeq..lastWalSeq` stay unchanged while writes go on into newer
   * WAL files.
   */
  async snapshot<T>(fn: (cut: CollectionCut) => Promise<T>): Promise<T> {
    await this.admit('backup');
    return this.exclusive(async () => {
      this.authorize('backup');
      await this.rotateWal();
      const m = structuredClone(this.manifest);
      return fn({ dir: this.dir, manifest: m, firstWalSeq: m.firstWalSeq, lastWalSeq: this.walNext - 1 });
    });
  }

  /**
   * Waits for pending writes; flushes when asked (and the keys allow it:
   * unflushed writes of a refused collection stay in its WAL); closes the WAL.
   */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      if (!this.loaded) {
        this.closed = true;
        return;
      }
      if ((options.flush ?? true) && this.usable()) await this.flushLocked();
      await this.journal.drain();
      this.closed = true;
      const { seal } = await this.journal.endFile();
      // The newest file, whole: a clean close of the store writes it to the state.
      const e = this.ctx.state.find(this.info.id);
      if (e) {
        for (const u of this.unannounced) this.ctx.state.noteSeal(this.info.id, u);
        this.unannounced = [];
        if (seal) e.closed = seal;
        else delete e.closed;
      }
    });
  }

  // ---- key lifecycle: refusal, unloading, re-keying ----

  /** Whether the collection's data is in memory (false while its keys are refused). */
  get isLoaded(): boolean {
    return this.loaded;
  }

  /**
   * Drops the collection's data from memory (pending writes are in the WAL
   * first) and closes its WAL file: used when its keys are disabled, so that
   * nothing decrypted outlives the decision.
   */
  async unload(): Promise<void> {
    await this.exclusive(async () => {
      if (!this.loaded || this.closed) return;
      await this.journal.drain();
      await this.endWalFile(this.journal);
      for (const u of this.unannounced) this.ctx.state.noteSeal(this.info.id, u);
      this.unannounced = [];
      this.loaded = false;
      this.resetMemory();
      this.ctx.logger.debug({ collection: this.info.name }, 'collection unloaded (keys refused)');
    });
  }

  /** Loads the collection again once its keys are usable (after an enable). */
  async reload(): Promise<void> {
    this.assertOpen();
    await this.exclusive(async () => {
      if (this.loaded) return;
      this.ctx.keys.assertUsable(this.info.id);
      this.resetMemory();
      this.keyFailure = undefined;
      await this.load();
      this.loaded = true;
    });
  }

  /**
   * Re-keys the collection: a new DEK version, used at once by new segments,
   * manifests and WAL files (the WAL moves to a new file under it). Older
   * segments stay readable under their own version until {@link reencrypt}
   * rewrites them. Returns the new version.
   */
  async rekey(options: { now?: Date } = {}): Promise<number> {
    await this.admit('rekey');
    return this.exclusive(async () => {
      const version = await this.ctx.keys.rekey(this.info.id, options);
      crashPoint('rekey:keyring-written');
      await this.rotateWal();
      crashPoint('rekey:wal-rotated');
      this.ctx.logger.info({ collection: this.info.name, dekVersion: version }, 'collection re-keyed');
      return version;
    });
  }

  /**
   * Rewrites every file sealed under an older DEK version under the active
   * one: unflushed WAL records first (by a flush), then one segment group at a
   * time, each committed by a new manifest, so a run cut short resumes from
   * what the manifest says. Reads and writes go on meanwhile (each segment is
   * read under its own version). When no file uses an older version any more,
   * those versions are destroyed in the keyring.
   */
  async reencrypt(options: { onProgress?: (p: ReencryptionProgress) => void } = {}): Promise<ReencryptionReport> {
    await this.admit('reencrypt');
    const id = this.info.id;
    const active = (): number => this.ctx.keys.activeDekVersion(id);
    await this.exclusive(() => this.retireOldWalLocked());
    crashPoint('reencrypt:wal-retired');
    const stale = (): SegmentGroup[] => this.manifest.groups.filter((g) => g.files.some((f) => f.dekVersion !== active()));
    const total = stale().length;
    let done = 0;
    options.onProgress?.({ done, total });
    // Bounded: a concurrent compaction rewrites groups under the active version, which only shortens the work.
    for (let round = 0; round < total; round++) {
      const more = await this.exclusive(async () => {
        this.authorize('reencrypt');
        const g = stale()[0];
        if (!g) return false;
        await this.rewriteGroupLocked(g);
        return true;
      });
      if (!more) break;
      done += 1;
      options.onProgress?.({ done, total });
    }
    const destroyedVersions = await this.exclusive(async () => {
      const version = active();
      if (stale().length > 0) return [];
      if ((await segmentDekVersion(join(this.dir, MANIFEST_FILE))) !== version) {
        await this.commit({ ...this.manifest, generation: this.manifest.generation + 1 });
        crashPoint('reencrypt:manifest-rewritten');
      }
      const used = await dekVersionsInUse(this.dir, this.ctx.storeId, id, this.manifest.groups);
      const old = this.ctx.keys.collectionKeys(id).deks.filter((d) => d.state === 'retired' && d.version !== version && !used.has(d.version));
      const destroyed: number[] = [];
      for (const d of old) {
        await this.ctx.keys.destroyDekVersion(id, d.version);
        crashPoint('reencrypt:version-destroyed');
        destroyed.push(d.version);
      }
      return destroyed;
    });
    this.ctx.logger.info({ collection: this.info.name, groups: done, destroyed: destroyedVersions.length }, 'collection re-encrypted');
    return { groups: done, dekVersion: active(), destroyedVersions };
  }

  /** Moves WAL records sealed under an older DEK version into segments (or past the WAL) under the active one. */
  private async retireOldWalLocked(): Promise<void> {
    const version = this.ctx.keys.activeDekVersion(this.info.id);
    const versions = await walDekVersions(this.dir, this.ctx.storeId, this.info.id, this.manifest.firstWalSeq);
    if (versions.every((v) => v === version)) return;
    // With an empty memtable the older WAL files hold nothing the segments lack: start the WAL past them.
    const seq = await this.journal.control(async (j) => {
      if (this.frozen || this.memtable.size > 0 || this.memtable.tombstones.size > 0) return undefined;
      await this.endWalFile(j);
      return this.walNext;
    });
    if (seq === undefined) {
      await this.flushLocked();
      return;
    }
    await this.commit({ ...this.manifest, generation: this.manifest.generation + 1, firstWalSeq: seq });
    await this.removeWalBefore(seq);
  }

  /** Rewrites one segment group under the active DEK version and commits it. */
  private async rewriteGroupLocked(g: SegmentGroup): Promise<void> {
    const version = this.ctx.keys.activeDekVersion(this.info.id);
    const newId = this.manifest.nextSegmentId;
    const files = await this.withKeys((keyFor) =>
      this.ctx.keys.withDek(this.info.id, version, (toKey) =>
        rewriteSegmentGroup({ collectionDir: this.dir, storeId: this.ctx.storeId, collectionId: this.info.id, group: g, newSegmentId: newId, keyFor, toVersion: version, toKey }),
      ),
    );
    crashPoint('reencrypt:group-written');
    const next: ManifestData = {
      ...this.manifest,
      generation: this.manifest.generation + 1,
      nextSegmentId: newId + 1,
      groups: this.manifest.groups.map((x) => (x === g ? { id: newId, count: g.count, files } : x)),
    };
    await this.commit(next);
    crashPoint('reencrypt:group-committed');
    const layer = this.segments.find((l) => l.segmentId === g.id);
    if (layer) layer.segmentId = newId;
    for (const f of g.files) await fs.rm(segmentFile(this.dir, g.id, f.kind), { force: true });
    crashPoint('reencrypt:group-done');
  }

  /**
   * Gate of every asynchronous operation: the keys' state (disable, deletion:
   * a map lookup) and, once the DEK's cache entry has expired, one
   * re-validation through the provider, so that a KEK disabled there takes
   * effect within the cache TTL.
   */
  private async admit(operation: string): Promise<void> {
    this.assertOpen();
    // A refusal by the provider is asked again before an asynchronous operation: it may have been lifted.
    if (this.keyFailure !== undefined) await this.revalidate().catch(() => undefined);
    this.authorize(operation);
    if (!this.loaded) await this.reload();
    if (!this.ctx.keys.isDekCached(this.info.id, this.ctx.keys.activeDekVersion(this.info.id))) {
      await this.revalidate().catch(() => undefined);
      this.authorize(operation);
    }
  }

  /**
   * Gate of the synchronous reads (search, get): the same key-state check,
   * never a provider call. An expired DEK starts a re-validation in the
   * background; once it fails, every read is refused.
   */
  private admitSync(operation: string): void {
    this.assertOpen();
    this.authorize(operation);
    if (!this.loaded) {
      const err = new KeyDisabledError(`collection "${this.info.name}" is not loaded; enable it through the store`);
      this.ctx.onDenied?.(this.info, operation, err);
      throw err;
    }
    if (!this.ctx.keys.isDekCached(this.info.id, this.ctx.keys.activeDekVersion(this.info.id))) {
      this.revalidate().catch(() => undefined);
    }
  }

  /** Throws (and reports as denied) when the collection's keys are refused. */
  private authorize(operation: string): void {
    try {
      this.ctx.keys.assertUsable(this.info.id);
      if (this.keyFailure !== undefined) {
        // Ask again in the background: a KEK enabled again in its provider restores access.
        this.revalidate().catch(() => undefined);
        throw this.keyFailure;
      }
    } catch (err) {
      this.ctx.onDenied?.(this.info, operation, err);
      throw err;
    }
  }

  private usable(): boolean {
    try {
      this.ctx.keys.assertUsable(this.info.id);
      return this.keyFailure === undefined;
    } catch {
      return false;
    }
  }

  /** One provider round trip (shared by concurrent callers) that re-validates the active DEK. */
  private revalidate(): Promise<void> {
    this.revalidation ??= (async () => {
      try {
        const lease = await this.ctx.keys.leaseDek(this.info.id, this.ctx.keys.activeDekVersion(this.info.id));
        lease.release();
        this.keyFailure = undefined;
      } catch (err) {
        // A refusal by the provider sticks until a later re-validation succeeds; an outage is retried.
        if (isRefusal(err) || (err as { code?: unknown } | undefined)?.code === 'VS_ACCESS_DENIED') this.keyFailure = err;
        throw err;
      } finally {
        this.revalidation = undefined;
      }
    })();
    return this.revalidation;
  }

  private resetMemory(): void {
    this.segments = [];
    this.frozen = undefined;
    this.frozenWalSeq = 0;
    this.memtable = this.newMemtable();
    this.current.clear();
  }

  // ---- writes applied to memory (after the WAL made them durable) ----

  private applyUpsert(records: { id: string; vector: Float32Array; metadata: Metadata | undefined }[]): void {
    for (const r of records) {
      const prev = this.current.get(r.id);
      if (prev) prev.layer.markDead(prev.label);
      const label = this.memtable.add(r.id, r.vector, r.metadata);
      this.current.set(r.id, { layer: this.memtable, label });
      this.memtable.tombstones.delete(r.id);
    }
  }

  private applyDelete(ids: string[]): number {
    let n = 0;
    for (const id of ids) {
      const prev = this.current.get(id);
      if (!prev) continue;
      prev.layer.markDead(prev.label);
      this.current.delete(id);
      // Masks the id in older segment groups once this memtable is flushed.
      this.memtable.tombstones.add(id);
      n++;
    }
    return n;
  }

  /** A metadata update is an upsert of the record's current vector, taken at apply time. */
  private applyMetadata(updates: Pick<CheckedUpdate, 'id' | 'metadata'>[]): number {
    let n = 0;
    for (const u of updates) {
      const loc = this.current.get(u.id);
      if (!loc) continue;
      this.applyUpsert([{ id: u.id, vector: new Float32Array(loc.layer.vectorOf(loc.label)), metadata: u.metadata }]);
      n++;
    }
    return n;
  }

  private applyOp(op: Op, file: string): void {
    if (op?.t === 'u' && Array.isArray(op.r)) {
      this.applyUpsert(
        op.r.map(([id, v, m]) => {
          const vector = new Float32Array(this.info.dim);
          new Uint8Array(vector.buffer).set(v);
          return { id, vector, metadata: m === null ? undefined : (unpack(m) as Metadata) };
        }),
      );
    } else if (op?.t === 'd' && Array.isArray(op.ids)) {
      this.applyDelete(op.ids);
    } else if (op?.t === 'm' && Array.isArray(op.r)) {
      this.applyMetadata(op.r.map(([id, m]) => ({ id, metadata: m === null ? undefined : (unpack(m) as Metadata) })));
    } else {
      throw new CorruptDataError('WAL record holds an unknown operation', { file, reason: 'decode' });
    }
  }

  // ---- flush and compaction ----

  private async flushLocked(): Promise<void> {
    let froze = false;
    for (;;) {
      if (!this.frozen) {
        if (froze || (this.memtable.size === 0 && this.memtable.tombstones.size === 0)) return;
        await this.freeze();
        froze = true;
      }
      await this.writeFrozen();
      if (this.segments.length > this.ctx.maxSegments) await this.compactLocked();
    }
  }

  /** Moves the memtable aside and sends new writes to a new WAL file. */
  private async freeze(): Promise<void> {
    await this.journal.control(async (j) => {
      await this.endWalFile(j);
      crashPoint('flush:wal-created');
      this.frozen = this.memtable;
      this.frozenWalSeq = this.walNext;
      this.memtable = this.newMemtable();
    });
    crashPoint('flush:frozen');
  }

  private async writeFrozen(): Promise<void> {
    const frozen = this.frozen as Layer;
    const labels: number[] = [];
    for (let i = 0; i < frozen.size; i++) if (!frozen.isDead(i)) labels.push(i);
    const segId = this.manifest.nextSegmentId;
    let layer: Layer | undefined;
    if (labels.length > 0) {
      if (labels.length === frozen.size) layer = frozen;
      else layer = await this.buildLayer(labels.map((label) => ({ layer: frozen, label })), segId);
    }
    const files = await this.writeGroup(segId, layer, [...frozen.tombstones], 'flush');
    const next: ManifestData = {
      ...this.manifest,
      generation: this.manifest.generation + 1,
      nextSegmentId: segId + 1,
      firstWalSeq: this.frozenWalSeq,
      groups: [...this.manifest.groups, { id: segId, count: labels.length, files }],
    };
    await this.commit(next);
    crashPoint('flush:committed');
    // Swap in memory, synchronously, so a search sees either layout whole.
    if (layer) {
      layer.segmentId = segId;
      if (layer !== frozen) this.remap(layer, labels.map((label) => ({ layer: frozen, label })));
      // The index is now the only copy of the vectors in memory, as after a reopen.
      if (this.indexHoldsVectors) layer.releaseVectors();
      this.segments.push(layer);
    }
    this.frozen = undefined;
    this.ctx.logger.debug({ collection: this.info.name, segmentId: segId, records: labels.length, generation: next.generation }, 'flush committed');
    await this.rotateWal();
    crashPoint('flush:wal-rotated');
    await this.removeWalBefore(next.firstWalSeq);
    crashPoint('flush:done');
  }

  private async compactLocked(): Promise<CompactionReport> {
    const old = [...this.segments];
    const oldGroups = this.manifest.groups;
    const dead = old.reduce((n, l) => n + (l.size - l.live), 0);
    const tombstoneOnly = oldGroups.some((g) => !g.files.some((f) => f.kind === SegmentKind.Vectors));
    if (oldGroups.length <= 1 && dead === 0 && !tombstoneOnly) return { merged: 0, records: this.segments[0]?.live ?? 0, dropped: 0 };
    const entries: { layer: Layer; label: number }[] = [];
    for (const l of old) for (let i = 0; i < l.size; i++) if (!l.isDead(i)) entries.push({ layer: l, label: i });
    const segId = this.manifest.nextSegmentId;
    const layer = entries.length > 0 ? await this.buildLayer(entries, segId) : undefined;
    crashPoint('compact:built');
    // Every older group is merged: no tombstone has anything left to mask.
    const files = await this.writeGroup(segId, layer, [], 'compact');
    const next: ManifestData = {
      ...this.manifest,
      generation: this.manifest.generation + 1,
      nextSegmentId: segId + 1,
      groups: layer ? [{ id: segId, count: entries.length, files }] : [],
    };
    await this.commit(next);
    crashPoint('compact:committed');
    if (layer) {
      this.remap(layer, entries);
      if (this.indexHoldsVectors) layer.releaseVectors();
    }
    this.segments = layer ? [layer] : [];
    await this.rotateWal();
    for (const g of oldGroups) for (const f of g.files) await fs.rm(segmentFile(this.dir, g.id, f.kind), { force: true });
    crashPoint('compact:done');
    this.ctx.logger.debug({ collection: this.info.name, merged: oldGroups.length, records: entries.length, dropped: dead }, 'compaction committed');
    return { merged: oldGroups.length, records: entries.length, dropped: dead };
  }

  /** A new segment layer holding copies of the given live records, with a fresh index. */
  private async buildLayer(entries: { layer: Layer; label: number }[], segId: number): Promise<Layer> {
    const index = newIndex(this.params, entries.length);
    const layer = new Layer(index, entries.length, segId);
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j] as { layer: Layer; label: number };
      layer.add(e.layer.ids[e.label] as string, e.layer.vectorOf(e.label), e.layer.metadata[e.label]);
      // Let searches run while a large index builds.
      if ((j + 1) % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    }
    return layer;
  }

  /**
   * Points every record of `entries` that is still live at its old place to
   * its new label in `layer`; marks the rest (deleted or superseded while
   * the layer was being written) dead.
   */
  private remap(layer: Layer, entries: { layer: Layer; label: number }[]): void {
    entries.forEach((e, j) => {
      const id = e.layer.ids[e.label] as string;
      const loc = this.current.get(id);
      if (loc && loc.layer === e.layer && loc.label === e.label) this.current.set(id, { layer, label: j });
      else layer.markDead(j);
    });
  }

  /** Writes the segment files of one group; returns their manifest entries. */
  private async writeGroup(segId: number, layer: Layer | undefined, tombstones: string[], step: string): Promise<SegmentFileEntry[]> {
    const version = this.ctx.keys.activeDekVersion(this.info.id);
    const files: SegmentFileEntry[] = [];
    let pages = 0;
    // A layer is written from a snapshot of its live labels: a reused memtable has none dead.
    await this.ctx.keys.withDek(this.info.id, version, async (dek) => {
      const write = async (kind: SegmentKind, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> => {
        const r = await writeSegment(segmentFile(this.dir, segId, kind), { kind, storeId: this.ctx.storeId, collectionId: this.info.id, segmentId: segId, dekVersion: version }, dek, data);
        files.push({ kind, length: r.length, sha256: r.sha256, dekVersion: version });
        pages += Math.max(1, Math.ceil(r.plaintextLength / CHUNK_SIZE));
      };
      const put = async (kind: SegmentKind, data: Buffer): Promise<void> => {
        try {
          await write(kind, data);
        } finally {
          data.fill(0);
        }
      };
      if (layer) {
        const n = layer.size;
        // The index holds exact vectors in 'l2' and 'ip': the block then carries the ids only.
        const vectorOf = this.indexHoldsVectors ? undefined : (i: number): Float32Array => layer.vectorOf(i);
        await put(SegmentKind.Vectors, encodeVectorBlock(layer.ids.slice(0, n), vectorOf, this.info.dim));
        crashPoint(`${step}:vectors-written`);
        await put(SegmentKind.Metadata, encodeList(layer.metadata.slice(0, n).map((m) => m ?? null)));
        crashPoint(`${step}:metadata-written`);
        // Streamed from the staging file through one reused buffer (zeroed by withSerializedIndex).
        await withSerializedIndex(layer.index, this.ctx.staging, (bytes) => write(SegmentKind.Index, bytes));
        crashPoint(`${step}:index-written`);
      }
      if (tombstones.length > 0) {
        await put(SegmentKind.Tombstones, encodeList(tombstones));
        crashPoint(`${step}:tombstones-written`);
      }
    });
    await this.ctx.notePages?.(this.info, pages);
    return files;
  }

  /** Replaces the manifest: named in the store state (as pending) before it is renamed into place. */
  private async commit(next: ManifestData): Promise<void> {
    const version = this.ctx.keys.activeDekVersion(this.info.id);
    let ref: { generation: number; sha256: string } | undefined;
    await this.ctx.keys.withDek(this.info.id, version, (dek) =>
      writeManifest(this.dir, this.ctx.storeId, next, dek, version, async (r) => {
        ref = r;
        await this.ctx.state.announceManifest(this.info.id, r);
      }),
    );
    this.manifest = next;
    if (ref) this.ctx.state.manifestCommitted(this.info.id, ref, next.firstWalSeq);
  }

  /**
   * Starts a new WAL file recording the current manifest generation, so that
   * a manifest rolled back to an older generation is caught on open.
   */
  private async rotateWal(): Promise<void> {
    await this.journal.control((j) => this.endWalFile(j));
  }

  /** Ends the current WAL file (control step): its seal goes to the state with the next file's announcement. */
  private async endWalFile(j: Journal): Promise<void> {
    const { ended, seal } = await j.endFile();
    if (!ended) return;
    if (seal) this.unannounced.push(seal);
    this.walNext += 1;
  }

  /**
   * Creates the next WAL file on the first append after one ended: the
   * state names it first (with the seals of the files it supersedes), so a
   * file the state does not know of is never legitimate.
   */
  private async openNextWal(): Promise<WalWriter> {
    const seq = this.walNext;
    await this.ctx.state.announceWal(this.info.id, seq, this.unannounced);
    this.unannounced = [];
    return this.newWal(seq, this.manifest.generation);
  }

  private async removeWalBefore(seq: number): Promise<void> {
    for (const s of await listWalFiles(this.walDir)) {
      if (s < seq) await fs.rm(join(this.walDir, walFileName(s)), { force: true });
    }
  }

  private async newWal(walSeq: number, generation: number): Promise<WalWriter> {
    const version = this.ctx.keys.activeDekVersion(this.info.id);
    return this.ctx.keys.withDek(this.info.id, version, (dek) =>
      WalWriter.create(this.walDir, { storeId: this.ctx.storeId, collectionId: this.info.id, walSeq, dekVersion: version, generation }, dek, {
        sync: this.ctx.durability === 'batch',
      }),
    );
  }

  // ---- open ----

  private async load(): Promise<void> {
    await this.withKeys(async (keyFor) => {
      const m = await readManifest(this.dir, this.ctx.storeId, this.info.id, keyFor);
      const manifestFile = join(this.dir, 'MANIFEST');
      const want = this.paramsRecord();
      if (m.name !== this.info.name || Object.entries(want).some(([k, v]) => m.params[k] !== v)) {
        throw new CorruptDataError(`the catalog entry "${this.info.name}" does not match the collection's sealed manifest`, {
          file: manifestFile,
          reason: 'catalog',
        });
      }
      // The manifest must be the one the store state records (or announced): an older copy is a rollback.
      const entry = this.ctx.state.find(this.info.id);
      const seals = await checkManifestState(entry, manifestFile, join(this.ctx.storeDir, STATE_FILE), m.generation, m.firstWalSeq);
      const walSeqs = await listWalFiles(this.walDir);
      for (const s of walSeqs) {
        if (s > (entry?.liveSeq ?? 0)) {
          // Files are named in the state before they are created: an authentic newer one meets an older copy of STATE.
          throw new RollbackError(`WAL file ${walFileName(s)} is newer than any the store state names: an older copy of STATE`, { file: join(this.ctx.storeDir, STATE_FILE), reason: 'rollback' });
        }
      }
      for (const seal of seals.values()) {
        if (!walSeqs.includes(seal.seq)) {
          throw new CorruptDataError(`WAL file ${walFileName(seal.seq)} is missing: the store state sealed it with ${seal.records} records`, {
            file: join(this.walDir, walFileName(seal.seq)),
            reason: 'missing',
          });
        }
      }
      for (const s of walSeqs) {
        const path = join(this.walDir, walFileName(s));
        const h = await readWalHeader(path, { storeId: this.ctx.storeId, collectionId: this.info.id, walSeq: s });
        if (h.generation > m.generation) {
          throw new RollbackError(`manifest generation ${m.generation} is older than WAL file ${walFileName(s)} proves (${h.generation})`, {
            file: manifestFile,
            reason: 'rollback',
          });
        }
      }
      this.manifest = m;
      for (const g of m.groups) await this.loadGroup(g, keyFor);
      await this.removeOrphanSegments(m);
      const live = walSeqs.filter((s) => s >= m.firstWalSeq);
      live.forEach((s, i) => {
        if (s !== m.firstWalSeq + i) {
          throw new CorruptDataError(`WAL file ${walFileName(m.firstWalSeq + i)} is missing`, {
            file: join(this.walDir, walFileName(m.firstWalSeq + i)),
            reason: 'missing',
          });
        }
      });
      let replayed = 0;
      for (const s of live) {
        const path = join(this.walDir, walFileName(s));
        const seal = seals.get(s);
        // A sealed file is checked before anything is repaired; only an unsealed (newest) one may have a torn tail cut off.
        const contents = await readWal(path, { storeId: this.ctx.storeId, collectionId: this.info.id, walSeq: s }, keyFor, { repair: seal === undefined });
        if (seal && (contents.records.length !== seal.records || contents.sha256 !== seal.sha256)) {
          for (const rec of contents.records) rec.fill(0);
          throw new CorruptDataError(
            `WAL file ${walFileName(s)} holds ${contents.records.length} records; the store state sealed it with ${seal.records}${contents.records.length === seal.records ? ' and another hash' : ''} (cut, emptied or replaced)`,
            { file: path, reason: 'sealed' },
          );
        }
        // Bytes after a sealed file's records were never part of it: dropped once the records proved whole.
        if (seal && contents.truncated > 0) await truncateWal(path, (await fs.stat(path)).size - contents.truncated);
        if (contents.truncated > 0) this.ctx.logger.warn({ collection: this.info.name, file: path, bytes: contents.truncated }, 'dropped a torn WAL tail');
        for (const rec of contents.records) {
          let op: Op;
          try {
            op = unpack(rec) as Op;
          } catch (err) {
            rec.fill(0);
            throw new CorruptDataError('WAL record does not decode', { file: path, reason: 'decode', cause: err });
          }
          // Binary fields are views into rec: apply (which copies) before zeroing.
          this.applyOp(op, path);
          rec.fill(0);
          replayed++;
        }
      }
      await this.removeWalBefore(m.firstWalSeq);
      // The newest file of a clean close is superseded by this session's first write.
      if (entry?.closed) {
        this.ctx.state.noteSeal(this.info.id, entry.closed);
        delete entry.closed;
      }
      this.walNext = Math.max(m.firstWalSeq - 1, ...walSeqs) + 1;
      this.unannounced = [];
      this.journal = new Journal(() => this.openNextWal());
      this.ctx.logger.debug({ collection: this.info.name, generation: m.generation, groups: m.groups.length, replayed }, 'collection opened');
    });
  }

  private async loadGroup(g: SegmentGroup, keyFor: DekLookup): Promise<void> {
    const byKind = new Map(g.files.map((f) => [f.kind, f]));
    const read = async (kind: SegmentKind): Promise<Buffer | undefined> => {
      const f = byKind.get(kind);
      if (!f) return undefined;
      // One read of the file: decrypted first (damage is reported with its
      // page), then the manifest's hash checked on the same bytes (an
      // authentic but different file: an older or replayed one).
      return readSegment(
        segmentFile(this.dir, g.id, kind),
        { storeId: this.ctx.storeId, collectionId: this.info.id, kind, segmentId: g.id, dekVersion: f.dekVersion, length: f.length, sha256: f.sha256 },
        keyFor,
      );
    };
    const tombFile = segmentFile(this.dir, g.id, SegmentKind.Tombstones);
    const tomb = await read(SegmentKind.Tombstones);
    if (tomb) {
      const ids = decodeList(tomb, undefined, tombFile);
      tomb.fill(0);
      for (const id of ids) {
        if (typeof id !== 'string') throw new CorruptDataError('tombstone is not an id', { file: tombFile, reason: 'decode' });
        const prev = this.current.get(id);
        if (prev) {
          prev.layer.markDead(prev.label);
          this.current.delete(id);
        }
      }
    }
    const vec = await read(SegmentKind.Vectors);
    if (!vec) return;
    const vecFile = segmentFile(this.dir, g.id, SegmentKind.Vectors);
    const block = decodeVectorBlock(vec, this.info.dim, vecFile);
    vec.fill(0);
    if (!block.vectors && !this.indexHoldsVectors) {
      throw new CorruptDataError('vector block leaves the vectors to a cosine index, which does not keep them exactly', { file: vecFile, reason: 'decode' });
    }
    const metaFile = segmentFile(this.dir, g.id, SegmentKind.Metadata);
    const metaBytes = await read(SegmentKind.Metadata);
    const idx = byKind.get(SegmentKind.Index);
    if (!metaBytes || !idx) {
      metaBytes?.fill(0);
      throw new CorruptDataError(`segment group ${g.id} lacks its ${metaBytes ? 'index' : 'metadata'} block`, { file: join(this.dir, 'MANIFEST'), reason: 'missing' });
    }
    const metas = decodeList(metaBytes, block.ids.length, metaFile);
    metaBytes.fill(0);
    const idxFile = segmentFile(this.dir, g.id, SegmentKind.Index);
    let index;
    try {
      // Decrypted straight into the staging file (no whole-graph buffer); hnswlib reads it once the hash matched.
      index = await deserializeIndex(
        async (sink) => {
          const reader = await SegmentReader.open(
            idxFile,
            { storeId: this.ctx.storeId, collectionId: this.info.id, kind: SegmentKind.Index, segmentId: g.id, dekVersion: idx.dekVersion, length: idx.length, sha256: idx.sha256 },
            keyFor,
          );
          try {
            await reader.readInto(sink);
          } finally {
            await reader.close();
          }
        },
        this.params,
        this.ctx.staging,
      );
    } catch (err) {
      if (err instanceof VectorsealError) throw err;
      throw new CorruptDataError('HNSW index does not load', { file: idxFile, reason: 'decode', cause: err });
    }
    const n = block.ids.length;
    if (index.getCurrentCount() !== n) {
      throw new CorruptDataError('HNSW index and vector block disagree on the record count', { file: idxFile, reason: 'decode' });
    }
    const layer = new Layer(index, n, g.id);
    for (let i = 0; i < n; i++) {
      const m = metas[i];
      metas[i] = m === null ? undefined : m;
    }
    layer.load(block.ids, metas as (Metadata | undefined)[], block.vectors, this.info.dim);
    for (let i = 0; i < n; i++) {
      const id = block.ids[i] as string;
      const prev = this.current.get(id);
      if (prev) {
        if (prev.layer === layer) throw new CorruptDataError('vector block repeats an id', { file: vecFile, reason: 'decode' });
        prev.layer.markDead(prev.label);
      }
      this.current.set(id, { layer, label: i });
    }
    this.segments.push(layer);
  }

  /** Removes segment files no manifest lists: leftovers of a flush or compaction cut short. */
  private async removeOrphanSegments(m: ManifestData): Promise<void> {
    const segDir = join(this.dir, 'seg');
    const live = new Set(m.groups.flatMap((g) => g.files.map((f) => segmentFile(this.dir, g.id, f.kind))));
    let names: string[];
    try {
      names = await fs.readdir(segDir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(segDir, n);
      if (!live.has(p)) await fs.rm(p, { force: true });
    }
  }

  // ---- helpers ----

  private initialManifest(): ManifestData {
    return {
      format: MANIFEST_FORMAT,
      collectionId: this.info.id,
      name: this.info.name,
      params: this.paramsRecord(),
      generation: 0,
      nextSegmentId: 1,
      firstWalSeq: 1,
      groups: [],
    };
  }

  private paramsRecord(): Record<string, string | number> {
    return { dim: this.info.dim, space: this.info.space, M: this.info.M, efConstruction: this.info.efConstruction };
  }

  private get walDir(): string {
    return join(this.dir, 'wal');
  }

  /** Whether the HNSW index keeps exact vectors ('l2', 'ip'; 'cosine' stores them normalized). */
  private get indexHoldsVectors(): boolean {
    return this.info.space !== 'cosine';
  }

  private newMemtable(): Layer {
    return new Layer(() => newIndex(this.params, 1024), 1024, undefined);
  }

  private async withKeys<T>(fn: (keyFor: DekLookup) => Promise<T>): Promise<T> {
    const leases: DekLease[] = [];
    try {
      return await fn(async (v) => {
        const l = await this.ctx.keys.leaseDek(this.info.id, v);
        leases.push(l);
        return l.key;
      });
    } finally {
      for (const l of leases) l.release();
    }
  }

  /** Flushes and compactions of one collection run one at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.exclusiveQueue.run(fn);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`collection "${this.info.name}" is closed`);
  }
}

/** The directory of a collection inside a store. */
/**
 * The search's record test: the compiled filter and the caller's predicate.
 * hnswlib calls it from native code, which must not see a JavaScript
 * exception: the first error is kept, every later candidate refused, and the
 * error is thrown by {@link rethrowPredicateError} once the search returns.
 */
function acceptOf(options: SearchOptions): ((m: Metadata | undefined, id: string) => boolean) | undefined {
  const compiled = options.filter === undefined ? undefined : compileFilter(options.filter);
  const where = options.where;
  if (where === undefined) return compiled;
  if (typeof where !== 'function') throw new InvalidArgumentError(`"where" expected a function, got ${where === null ? 'null' : typeof where}`);
  const state: { error?: { value: unknown } } = {};
  const test = (m: Metadata | undefined, id: string): boolean => {
    if (state.error) return false;
    if (compiled && !compiled(m)) return false;
    try {
      return where(m, id) === true;
    } catch (err) {
      state.error = { value: err };
      return false;
    }
  };
  predicateErrors.set(test, state);
  return test;
}

const predicateErrors = new WeakMap<object, { error?: { value: unknown } }>();

function rethrowPredicateError(accept: object | undefined): void {
  const e = accept === undefined ? undefined : predicateErrors.get(accept)?.error;
  if (e) throw e.value;
}

export function collectionDir(storeDir: string, collectionId: string): string {
  return join(storeDir, 'collections', collectionId);
}

/** Whether an error is the keyring refusing a collection's keys (disabled, pending deletion, destroyed). */
function isRefusal(err: unknown): boolean {
  return err instanceof KeyDisabledError || err instanceof KeyPendingDeletionError || err instanceof KeyDestroyedError;
}

/**
 * A query as hnswlib takes it. A Float32Array of the right dimension is only
 * checked for non-finite components; anything else goes through the full
 * conversion (and its error messages).
 */
function queryOf(vector: Float32Array | number[], dim: number, space: string): number[] {
  if (vector instanceof Float32Array && vector.length === dim) {
    let finite = true;
    let zero = true;
    for (let i = 0; i < dim; i++) {
      const x = vector[i] as number;
      if (!Number.isFinite(x)) {
        finite = false;
        break;
      }
      if (x !== 0) zero = false;
    }
    if (finite && !(zero && space === 'cosine')) return Array.from(vector);
  }
  return Array.from(toVector(vector, dim, 'search', space));
}
