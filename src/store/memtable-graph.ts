import { NativeGraph } from '../hnsw/index.js';
import { crashPoint } from '../util/crash.js';
import { BUILD_THREADS } from './graph-build.js';
import type { IndexParams } from './layer.js';

/*
 * The memtable's HNSW graph, grown in the background while records arrive,
 * so that a flush finds its graph (nearly) built instead of building it then.
 *
 * The memtable stays a tail: every record is searchable by exact scan the
 * moment it is applied, and nothing here is durable (the WAL is). What this
 * adds is a graph over a prefix of the memtable's labels, 0..indexed-1,
 * grown in batches by addBatch on native threads (the JS thread never waits
 * for one). A search asks the graph for the prefix and scans the labels
 * after it exactly, so recall never drops below the graph's own.
 *
 * Searches run beside a batch (hnswlib's search is safe beside concurrent
 * adds), restricted by a bitmap to labels of finished batches that are
 * still live: a label the running batch is linking is answered by the scan,
 * never twice. Delete marks are refused during a batch, so the bitmap, not
 * the graph, says which labels died.
 */

/**
 * Unindexed records a memtable gathers before a batch starts: a smaller
 * memtable is built at flush, where it costs little, and never pays for a
 * graph's memory (most memtables of a store with many collections stay small).
 */
export const GROW_MIN = 1000;

/** What the graph reads of its memtable. */
export interface GrowSource {
  readonly size: number;
  /** The rows of labels [from, to), read where they are (they never change once appended). */
  rowsBetween(from: number, to: number): Float32Array[];
  isDead(label: number): boolean;
}

/** Hits of the graph's prefix: labels and distances, closest first. */
export interface PrefixHits {
  neighbors: ArrayLike<number>;
  distances: ArrayLike<number>;
}

export class MemtableGraph {
  private graph: NativeGraph | undefined;
  /** Labels below this are linked into the graph by a finished batch. */
  private indexedUpTo = 0;
  /** One byte per label: 1 for a label of a finished batch that is still live (the search's filter). */
  private admit = new Uint8Array(0);
  private running: Promise<void> | undefined;
  /** A batch failed (or the graph was handed over or dropped): no more batches, no more answers; a flush builds as before. */
  private done = false;

  constructor(
    private readonly params: IndexParams,
    private readonly source: GrowSource,
  ) {}

  /** Labels the graph answers for (the rest are scanned). */
  get indexed(): number {
    return this.done ? 0 : this.indexedUpTo;
  }

  /** Starts a batch over the labels not in the graph yet, unless one runs or too few wait. */
  grow(): void {
    if (this.running || this.done) return;
    const from = this.indexedUpTo;
    const to = this.source.size;
    if (to - from < GROW_MIN) return;
    this.running = this.add(from, to).then(
      () => {
        this.running = undefined;
        // The records that arrived meanwhile: the graph keeps up without waiting for the next upsert.
        this.grow();
      },
      () => {
        this.running = undefined;
      },
    );
  }

  /** A label died (deleted or superseded): the graph no longer answers for it. */
  kill(label: number): void {
    if (label < this.admit.length) this.admit[label] = 0;
  }

  /**
   * The graph's nearest live labels among 0..indexed-1, closest first, or
   * undefined when it answers for none.
   */
  search(query: Float32Array, k: number, ef: number): PrefixHits | undefined {
    const g = this.graph;
    if (!g || this.done || this.indexedUpTo === 0) return undefined;
    const n = Math.min(k, this.indexedUpTo);
    g.setEf(Math.max(ef, n));
    return g.searchKnn(query, n, this.admit);
  }

  /**
   * For the flush of this memtable, every label of which is live: waits for
   * the batch under way, adds the rest on every build thread, and hands the
   * graph over (labels 0..size-1, in order); this object answers nothing
   * after. Undefined when there is no graph (a small memtable) or a batch
   * failed: the flush then builds one as before.
   */
  async finish(): Promise<NativeGraph | undefined> {
    await this.idle();
    const g = this.graph;
    if (!g || this.done) return undefined;
    const to = this.source.size;
    if (to > this.indexedUpTo) {
      crashPoint('memgraph:catch-up');
      await this.add(this.indexedUpTo, to, true);
      if (this.done) return undefined;
    }
    this.done = true;
    this.graph = undefined;
    return g;
  }

  /** Waits for the batch under way. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Adds every label not in the graph yet (any number of them), and waits: the whole memtable indexed. */
  async catchUp(): Promise<void> {
    await this.idle();
    const to = this.source.size;
    if (this.done || to === this.indexedUpTo) return;
    // Too small a memtable for a graph of its own: it is scanned, and built at flush.
    if (!this.graph && to < GROW_MIN) return;
    await this.add(this.indexedUpTo, to, true);
  }

  /** Frees the graph once no batch runs (the memtable was dropped or flushed without it). */
  async dispose(): Promise<void> {
    this.done = true;
    await this.idle();
    const g = this.graph;
    this.graph = undefined;
    if (g && !g.busy) g.free();
  }

  private async add(from: number, to: number, waited = false): Promise<void> {
    try {
      let g = this.graph;
      if (!g) {
        g = NativeGraph.create(this.params, Math.max(2 * to, 4 * GROW_MIN));
        this.graph = g;
      }
      const capacity = g.getMaxElements();
      if (to > capacity) g.resizeIndex(Math.max(to, 2 * capacity));
      if (this.admit.length < g.getMaxElements()) {
        const grown = new Uint8Array(g.getMaxElements());
        grown.set(this.admit);
        this.admit = grown;
      }
      if (!waited) crashPoint('memgraph:batch');
      await g.addBatch(this.source.rowsBetween(from, to), from, BUILD_THREADS);
      crashPoint('memgraph:added');
      for (let label = from; label < to; label++) this.admit[label] = this.source.isDead(label) ? 0 : 1;
      this.indexedUpTo = to;
    } catch (err) {
      // The memtable stays a tail searched by exact scan, and its flush builds the graph as before.
      this.done = true;
      const g = this.graph;
      this.graph = undefined;
      if (g && !g.busy) g.free();
      if (waited) return;
      throw err;
    }
  }
}
