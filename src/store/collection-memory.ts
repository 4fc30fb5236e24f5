import { join } from 'node:path';
import { ClosedError, CorruptDataError } from '../errors.js';
import type { DekLease } from '../keys/dek-cache.js';
import { MANIFEST_FORMAT, type ManifestData } from '../storage/manifest.js';
import type { DekLookup } from '../storage/segment.js';
import type { CollectionInfo } from './catalog.js';
import type { CollectionContext, FlushTimings } from './collection-types.js';
import type { Journal } from './journal.js';
import { Layer, type IndexParams } from './layer.js';
import { unpack, type Metadata } from './metadata.js';
import type { CheckedUpdate } from './records.js';
import type { WalSeal } from './state.js';
import { SerialQueue } from '../util/serial-queue.js';

/** One WAL record. */
export type Op =
  | { t: 'u'; r: [string, Uint8Array, Uint8Array | null][] }
  | { t: 'd'; ids: string[] }
  /** Metadata replaced, vector kept (the vector is taken when the record is applied, so no write in between is lost). */
  | { t: 'm'; r: [string, Uint8Array | null][] };

/** Where a live record is: its layer and its label there. */
export interface Location {
  layer: Layer;
  label: number;
}

/** Records copied between event-loop turns while a large index builds. */
export const YIELD_EVERY = 2_000;

/** The directory of a collection inside a store. */
export function collectionDir(storeDir: string, collectionId: string): string {
  return join(storeDir, 'collections', collectionId);
}

/**
 * The shared in-memory state of one open collection: the memtable, the
 * frozen memtable being flushed, the segment layers, the id map, the manifest
 * in force and the WAL bookkeeping. Every part of the collection (files,
 * search, key gate, flush, recovery, re-encryption) reads and swaps this one
 * object; none of them calls back into the Collection facade.
 */
export class CollectionMemory {
  segments: Layer[] = [];
  /** The memtable being flushed (or left by a flush that failed). */
  frozen: Layer | undefined;
  /** First WAL file not covered by the frozen memtable. */
  frozenWalSeq = 0;
  /** Sequence number the next WAL file gets (files are created on the first append after one ends). */
  walNext = 1;
  /** Seals of WAL files ended since the last one was announced in the store state. */
  unannounced: WalSeal[] = [];
  memtable: Layer;
  readonly current = new Map<string, Location>();
  manifest!: ManifestData;
  journal!: Journal;
  private readonly exclusiveQueue = new SerialQueue();
  closed = false;
  /** What the last flush of this session cost (collection stats). */
  lastFlush: FlushTimings | undefined;
  /** The automatic flush under way, if any. */
  autoFlushing: Promise<void> | undefined;
  /** The background compaction under way, if any (see compaction.ts). */
  compacting: Promise<void> | undefined;
  /** Set while closing or unloading: the background compaction starts no further merge. */
  quiescing = false;
  /** Lowest segment id not yet handed out in this session (ids are taken before the manifest naming them commits). */
  private segmentIdFloor = 0;
  /** False while the collection's keys are refused: its data is dropped from memory until enabled. */
  loaded = false;
  /**
   * True for a collection opened lazily and not loaded yet: only its sealed
   * manifest was read (no segment, no WAL). The first asynchronous operation
   * loads it; synchronous reads refuse until then.
   */
  pendingLoad = false;
  /** Why the last re-validation of the DEK failed (a KEK disabled in its provider); cleared by a good one. */
  keyFailure: unknown;
  revalidation: Promise<void> | undefined;
  readonly dir: string;
  readonly params: IndexParams;
  /** A reader's snapshot: the manifest file and WAL lengths it loaded (see CollectionCut). */
  readerCut: { manifestBytes: Buffer; walLengths: Map<number, number> } | undefined;

  constructor(
    readonly ctx: CollectionContext,
    readonly info: CollectionInfo,
  ) {
    this.dir = collectionDir(ctx.storeDir, info.id);
    this.params = { space: info.space, dim: info.dim, M: info.M, efConstruction: info.efConstruction };
    this.memtable = this.newMemtable();
  }

  get walDir(): string {
    return join(this.dir, 'wal');
  }

  /** Whether the HNSW index keeps exact vectors ('l2', 'ip'; 'cosine' stores them normalized). */
  get indexHoldsVectors(): boolean {
    return this.info.space !== 'cosine';
  }

  paramsRecord(): Record<string, string | number> {
    return { dim: this.info.dim, space: this.info.space, M: this.info.M, efConstruction: this.info.efConstruction };
  }

  initialManifest(): ManifestData {
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

  /**
   * An empty memtable: a tail, searched by exact scan, whose graph grows in
   * the background once enough records arrive (memtable-graph.ts); a flush
   * finishes that graph, or builds one.
   */
  newMemtable(): Layer {
    return Layer.memtable(this.params);
  }

  /** Frees the background graphs of the memtable and a frozen one (dropped without a flush); waits for a batch under way. */
  async disposeGraphs(): Promise<void> {
    await Promise.all([this.memtable.grown?.dispose(), this.frozen?.grown?.dispose()]);
  }

  /**
   * A segment id no group has used: flushes and a background compaction
   * take ids before their manifests commit, so the manifest's next id alone
   * could hand one out twice.
   */
  takeSegmentId(): number {
    const id = Math.max(this.manifest.nextSegmentId, this.segmentIdFloor);
    this.segmentIdFloor = id + 1;
    return id;
  }

  resetMemory(): void {
    // Their graphs' native memory now, not at garbage collection (a batch under way finishes first).
    void this.disposeGraphs();
    this.segments = [];
    this.frozen = undefined;
    this.frozenWalSeq = 0;
    this.memtable = this.newMemtable();
    this.current.clear();
    this.segmentIdFloor = 0;
  }

  /** Runs `fn` with a lookup that leases DEK versions, released when it ends. */
  async withKeys<T>(fn: (keyFor: DekLookup) => Promise<T>): Promise<T> {
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
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.exclusiveQueue.run(fn);
  }

  assertOpen(): void {
    if (this.closed) throw new ClosedError(`collection "${this.info.name}" is closed`);
  }

  // ---- writes applied to memory (after the WAL made them durable) ----

  applyUpsert(records: { id: string; vector: Float32Array; metadata: Metadata | undefined }[]): void {
    for (const r of records) {
      const prev = this.current.get(r.id);
      if (prev) prev.layer.markDead(prev.label);
      const label = this.memtable.add(r.id, r.vector, r.metadata);
      this.current.set(r.id, { layer: this.memtable, label });
      this.memtable.tombstones.delete(r.id);
    }
    // Off the caller's path: a batch starts only when none runs and enough records wait.
    this.memtable.grown?.grow();
  }

  applyDelete(ids: string[]): number {
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
  applyMetadata(updates: Pick<CheckedUpdate, 'id' | 'metadata'>[]): number {
    let n = 0;
    for (const u of updates) {
      const loc = this.current.get(u.id);
      if (!loc) continue;
      this.applyUpsert([{ id: u.id, vector: new Float32Array(loc.layer.vectorOf(loc.label)), metadata: u.metadata }]);
      n++;
    }
    return n;
  }

  /** Applies one replayed WAL record. */
  applyOp(op: Op, file: string): void {
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
}
