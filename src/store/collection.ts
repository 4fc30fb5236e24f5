import { join } from 'node:path';
import { errorCode, InvalidArgumentError, KeyDisabledError } from '../errors.js';
import { writeManifest } from '../storage/manifest.js';
import { mkdirDurable } from '../storage/fsutil.js';
import { crashPoint } from '../util/crash.js';
import type { CollectionInfo } from './catalog.js';
import type { CreateSteps } from './create-batch.js';
import { endWalFile, rotateWal } from './collection-files.js';
import { compactLocked, flushLocked } from './collection-flush.js';
import { CollectionMemory, collectionDir, type Op } from './collection-memory.js';
import { lazyStats, openLazily } from './collection-lazy.js';
import { lazyCut } from './collection-cut.js';
import { load, reload } from './collection-recovery.js';
import { scheduleCompaction } from './compaction.js';
import { matchingIds, searchLayers } from './collection-search.js';
import type {
  CollectionContext,
  CollectionCut,
  CollectionStats,
  CompactionReport,
  SearchOptions,
  SearchResult,
  StoredRecord,
  VectorRecord,
} from './collection-types.js';
import type { Filter } from './filter.js';
import { admit, admitSync, authorize, isRefusal, usable } from './key-gate.js';
import { pack, readOnly, type Metadata } from './metadata.js';
import { checkId } from './validate.js';
import { checkBatch, checkUpdates, type MetadataUpdate } from './records.js';
import { countWhere, deleteWhere, getMany, list, records, searchMany, type ListOptions, type RecordPage } from './query-api.js';
import { reencryptCollection, type ReencryptionProgress, type ReencryptionReport } from './reencrypt.js';

export type {
  CollectionContext,
  CollectionCut,
  CollectionStats,
  CompactionReport,
  FlushTimings,
  SearchOptions,
  SearchResult,
  StoredRecord,
  VectorRecord,
} from './collection-types.js';
export { collectionDir } from './collection-memory.js';

const MAX_BATCH = 1_000_000;

/**
 * A collection: an HNSW memtable backed by the encrypted WAL, plus immutable
 * encrypted segment groups listed by a sealed manifest. Everything searchable
 * is in memory once open; only writes, flushes and compactions touch keys.
 *
 * This class is the public face only: its state is a CollectionMemory
 * (collection-memory.ts) that the parts read and swap, each in its own file:
 * files (collection-files.ts), search (collection-search.ts), the key gate
 * (key-gate.ts), flush and compaction (collection-flush.ts), recovery
 * (collection-recovery.ts) and re-encryption (reencrypt.ts).
 */
export class Collection<M extends object = Metadata> {
  private s: CollectionMemory;
  readonly dir: string;

  private constructor(
    ctx: CollectionContext,
    readonly info: CollectionInfo,
  ) {
    this.s = new CollectionMemory(ctx, info);
    this.dir = this.s.dir;
  }

  /** Creates the files of a new collection (its keys must exist) and opens it. */
  static async create(ctx: CollectionContext, info: CollectionInfo, batch?: CreateSteps): Promise<Collection> {
    const dir = collectionDir(ctx.storeDir, info.id);
    // Each new directory entry is fsynced, so a crash cannot leave a manifest in a directory that vanished
    // (a batch, create-batch.ts, fsyncs them once for the whole group before the create is acknowledged).
    if (batch) {
      await batch.makeDirs(dir);
    } else {
      await mkdirDurable(join(dir, 'wal'));
      await mkdirDurable(join(dir, 'seg'));
    }
    const c = new Collection(ctx, info);
    const version = ctx.keys.activeDekVersion(info.id);
    const initial = c.s.initialManifest();
    await ctx.keys.withDek(info.id, version, (dek) =>
      writeManifest(dir, ctx.storeId, initial, dek, version, async (ref) => {
        ctx.state.entry(info.id);
        await (batch ? batch.announce(info.id, ref) : ctx.state.announceManifest(info.id, ref));
      }),
    );
    return Collection.open(ctx, info);
  }

  /**
   * Opens a collection: checks the manifest, loads its segments, replays the
   * WAL. A collection whose keys are refused (disabled, its tenant disabled or
   * scheduled for deletion) opens unloaded and loads once enabled.
   */
  static async open(ctx: CollectionContext, info: CollectionInfo, options: { lazy?: boolean } = {}): Promise<Collection> {
    const c = new Collection(ctx, info);
    try {
      ctx.keys.assertUsable(info.id);
    } catch (err) {
      if (isRefusal(err)) return c;
      throw err;
    }
    if (options.lazy) {
      await openLazily(c.s);
      return c;
    }
    await load(c.s);
    c.s.loaded = true;
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
    const s = this.s;
    await admit(s, 'upsert');
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
    await s.journal.append(payload, () => s.applyUpsert(checked));
    this.maybeAutoFlush();
  }

  /**
   * Starts a flush in the background once the unflushed records pass the
   * store's threshold, so the WAL (and its replay on open) stays bounded.
   * Acknowledged writes are already durable in the WAL: a failed automatic
   * flush loses nothing and is logged; the next write or close tries again.
   */
  private maybeAutoFlush(): void {
    const s = this.s;
    const limit = s.ctx.autoFlushRecords;
    if (limit <= 0 || s.autoFlushing || s.closed || s.memtable.live < limit) return;
    s.autoFlushing = this.flush()
      .catch((err: unknown) => s.ctx.logger.warn({ err: errorCode(err) }, 'automatic flush failed'))
      .finally(() => {
        s.autoFlushing = undefined;
      });
  }

  /** Deletes records by id; resolves with how many existed, once durable. */
  async delete(ids: string[] | string): Promise<number> {
    const s = this.s;
    await admit(s, 'delete');
    const list = Array.isArray(ids) ? ids : [ids];
    list.forEach((id, i) => checkId(id, `ids[${i}]`));
    const unique = [...new Set(list)];
    if (unique.length === 0) return 0;
    let deleted = 0;
    await s.journal.append(pack({ t: 'd', ids: unique } satisfies Op), () => {
      deleted = s.applyDelete(unique);
    });
    return deleted;
  }

  /** The stored record, or undefined. Served from memory. */
  get(id: string): StoredRecord<M> | undefined {
    admitSync(this.s, 'get');
    checkId(id, 'get');
    const loc = this.s.current.get(id);
    if (!loc) return undefined;
    return {
      id,
      vector: new Float32Array(loc.layer.vectorOf(loc.label)),
      metadata: readOnly(loc.layer.metadata[loc.label]) as M | undefined,
    };
  }

  /** Whether a record exists. */
  has(id: string): boolean {
    admitSync(this.s, 'get');
    return this.s.current.has(id);
  }

  /**
   * The k nearest live records, closest first, across every segment and the
   * memtable. Runs entirely in memory (no file, no key).
   */
  search(vector: Float32Array | number[], k = 10, options: SearchOptions<M> = {}): SearchResult<M>[] {
    admitSync(this.s, 'search');
    return searchLayers(this.s, vector, k, options);
  }

  /** Live record count. */
  get count(): number {
    return this.s.current.size;
  }

  /** Writes the memtable as a new encrypted segment group and commits a manifest. */
  async flush(): Promise<void> {
    // Nothing of a collection not loaded yet is in memory: its writes are in its WAL already.
    if (this.s.pendingLoad && !this.s.closed) return;
    await admit(this.s, 'flush');
    await this.s.exclusive(() => flushLocked(this.s));
    // Merging the groups happens beside later writes and flushes, never inside this one.
    scheduleCompaction(this.s);
  }

  /**
   * Resolves once the background work started so far (an automatic flush,
   * the compaction it led to) has finished. Nothing needs it for durability
   * or visibility (acknowledged writes are both): it is for measurements and
   * tests that want a settled layout.
   */
  async whenIdle(): Promise<void> {
    const s = this.s;
    while (s.autoFlushing || s.compacting) await (s.autoFlushing ?? s.compacting);
  }

  /** Merges every segment group into one, dropping deleted and superseded records. */
  async compact(): Promise<CompactionReport> {
    await admit(this.s, 'compact');
    return this.s.exclusive(async () => {
      await flushLocked(this.s);
      return compactLocked(this.s);
    });
  }

  stats(): CollectionStats {
    const s = this.s;
    if (s.pendingLoad) return lazyStats(s);
    // A collection opened while its keys were refused has no manifest in memory.
    const manifest = s.manifest as typeof s.manifest | undefined;
    const files = manifest?.groups.flatMap((g) => g.files) ?? [];
    return {
      name: this.info.name,
      id: this.info.id,
      dim: this.info.dim,
      space: this.info.space,
      tenant: this.info.tenant,
      count: s.current.size,
      unflushed: s.memtable.live + (s.frozen?.live ?? 0),
      segments: manifest?.groups.length ?? 0,
      segmentFiles: files.length,
      segmentBytes: files.reduce((n, f) => n + f.length, 0),
      deadRecords: s.segments.reduce((n, l) => n + (l.size - l.live), 0),
      generation: manifest?.generation ?? 0,
      dekVersion: s.ctx.keys.activeDekVersion(this.info.id),
      loaded: s.loaded,
      ...(s.lastFlush ? { lastFlush: { ...s.lastFlush } } : {}),
    };
  }

  /** Loads a lazily opened collection (segments, WAL) now rather than on its first asynchronous operation. */
  async load(): Promise<void> {
    if (this.s.loaded) return;
    await admit(this.s, 'get');
  }

  /** Every live id (in no particular order). */
  ids(): string[] {
    admitSync(this.s, 'get');
    return [...this.s.current.keys()];
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
    admitSync(this.s, 'get');
    return matchingIds(this.s, filter);
  }

  /**
   * Replaces the metadata of existing records without resending their
   * vectors (`metadata: null` removes it); ids without a record are ignored.
   * Resolves with how many records were updated, once durable.
   */
  async updateMetadata(updates: MetadataUpdate<M>[] | MetadataUpdate<M>): Promise<number> {
    const s = this.s;
    await admit(s, 'upsert');
    const list = Array.isArray(updates) ? updates : [updates];
    if (list.length === 0) return 0;
    if (list.length > MAX_BATCH) throw new InvalidArgumentError(`"updates" expected at most ${MAX_BATCH} updates, got ${list.length}`);
    const checked = checkUpdates(list);
    const payload = pack({ t: 'm', r: checked.map((c) => [c.id, c.meta]) } satisfies Op);
    for (const c of checked) c.meta?.fill(0);
    let updated = 0;
    await s.journal.append(payload, () => {
      updated = s.applyMetadata(checked);
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
   * WAL files. A collection opened lazily and not loaded yet is not loaded
   * for it: its cut is taken from its files and the store state alone
   * (collection-cut.ts), and a write arriving meanwhile (which loads it)
   * waits until `fn` returns.
   */
  async snapshot<T>(fn: (cut: CollectionCut) => Promise<T>): Promise<T> {
    const s = this.s;
    await admit(s, 'backup', { keepLazy: true });
    const lazy = (): boolean => s.pendingLoad && !s.loaded;
    if (s.ctx.readOnly) {
      // A reader's cut is its snapshot as loaded: nothing to close, nothing the writer's flushes can change.
      if (lazy()) return fn(await lazyCut(s));
      return this.readerSnapshot(fn);
    }
    return s.exclusive(async () => {
      authorize(s, 'backup');
      if (lazy()) return fn(await lazyCut(s));
      await rotateWal(s);
      const m = structuredClone(s.manifest);
      return fn({ dir: this.dir, manifest: m, firstWalSeq: m.firstWalSeq, lastWalSeq: s.walNext - 1 });
    });
  }

  /** A reader's backup cut: the snapshot it loaded (see {@link snapshot}). */
  private async readerSnapshot<T>(fn: (cut: CollectionCut) => Promise<T>): Promise<T> {
    const s = this.s;
    const cut = s.readerCut;
    if (!cut) throw new KeyDisabledError(`collection "${this.info.name}" is not loaded; its keys were refused when the snapshot was read`);
    const m = structuredClone(s.manifest);
    const lastWalSeq = Math.max(m.firstWalSeq - 1, ...cut.walLengths.keys());
    const { manifestBytes, walLengths } = cut;
    return fn({ dir: this.dir, manifest: m, firstWalSeq: m.firstWalSeq, lastWalSeq, manifestBytes, walLengths });
  }

  /**
   * @internal A reader's refresh: this handle takes the contents of `fresh`
   * (the same collection read from a newer snapshot), so that references
   * callers hold stay good. Synchronous, so a search sees one snapshot whole.
   */
  adopt(fresh: Collection<M>): void {
    if (!this.s.ctx.readOnly || fresh.info.id !== this.info.id) {
      throw new InvalidArgumentError("only a reader's collection adopts a newer snapshot of itself");
    }
    this.s.assertOpen();
    this.s = fresh.s;
  }

  /**
   * Waits for pending writes; flushes when asked (and the keys allow it:
   * unflushed writes of a refused collection stay in its WAL); closes the WAL.
   */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    const s = this.s;
    if (s.closed) return;
    if (s.ctx.readOnly) {
      s.closed = true;
      s.resetMemory();
      return;
    }
    // A background merge under way finishes (or abandons) first; no new one starts.
    s.quiescing = true;
    await s.compacting;
    await s.exclusive(async () => {
      if (!s.loaded) {
        s.closed = true;
        return;
      }
      if ((options.flush ?? true) && usable(s)) await flushLocked(s);
      await s.journal.drain();
      s.closed = true;
      // A background graph batch finishes before close returns; the graphs' memory is freed now.
      await s.disposeGraphs();
      const { seal } = await s.journal.endFile();
      // The newest file, whole: a clean close of the store writes it to the state.
      const e = s.ctx.state.find(this.info.id);
      if (e) {
        for (const u of s.unannounced) s.ctx.state.noteSeal(this.info.id, u);
        s.unannounced = [];
        if (seal) e.closed = seal;
        else delete e.closed;
      }
    });
  }

  /**
   * Resolves once every record applied so far is in an HNSW graph: the
   * memtable's background graph has caught up (a memtable too small for one
   * is searched by exact scan and built at flush). Records are searchable
   * without this; after it, a flush only writes.
   */
  async waitForIndex(): Promise<void> {
    this.s.assertOpen();
    await this.s.memtable.grown?.catchUp();
  }

  // ---- key lifecycle: refusal, unloading, re-keying ----

  /** Whether the collection's data is in memory (false while its keys are refused). */
  get isLoaded(): boolean {
    return this.s.loaded;
  }

  /** Whether the collection was opened lazily and its data has not loaded yet (its keys were usable then). */
  get awaitsLoad(): boolean {
    return this.s.pendingLoad && !this.s.loaded;
  }

  /**
   * Drops the collection's data from memory (pending writes are in the WAL
   * first) and closes its WAL file: used when its keys are disabled, so that
   * nothing decrypted outlives the decision.
   */
  async unload(): Promise<void> {
    const s = this.s;
    s.quiescing = true;
    await s.compacting;
    s.quiescing = false;
    await s.exclusive(async () => {
      if (!s.loaded || s.closed) return;
      await s.journal.drain();
      await endWalFile(s, s.journal);
      for (const u of s.unannounced) s.ctx.state.noteSeal(this.info.id, u);
      s.unannounced = [];
      s.loaded = false;
      s.resetMemory();
      s.ctx.logger.debug({ collection: this.info.name }, 'collection unloaded (keys refused)');
    });
  }

  /** Loads the collection again once its keys are usable (after an enable); in a lazy store, its manifest only. */
  async reload(): Promise<void> {
    await reload(this.s, { lazy: this.s.ctx.lazy ?? false });
  }

  /**
   * Re-keys the collection: a new DEK version, used at once by new segments,
   * manifests and WAL files (the WAL moves to a new file under it). Older
   * segments stay readable under their own version until {@link reencrypt}
   * rewrites them. Returns the new version.
   */
  async rekey(options: { now?: Date } = {}): Promise<number> {
    const s = this.s;
    await admit(s, 'rekey');
    return s.exclusive(async () => {
      const version = await s.ctx.keys.rekey(this.info.id, options);
      crashPoint('rekey:keyring-written');
      await rotateWal(s);
      crashPoint('rekey:wal-rotated');
      s.ctx.logger.info({ collection: this.info.name, dekVersion: version }, 'collection re-keyed');
      return version;
    });
  }

  /**
   * Rewrites every file sealed under an older DEK version under the active
   * one (see reencrypt.ts). Reads and writes go on meanwhile (each segment is
   * read under its own version). When no file uses an older version any more,
   * those versions are destroyed in the keyring.
   */
  async reencrypt(options: { onProgress?: (p: ReencryptionProgress) => void } = {}): Promise<ReencryptionReport> {
    await admit(this.s, 'reencrypt');
    return reencryptCollection(this.s, options);
  }
}
