import { UnsupportedOperationError } from '../errors.js';
import { graphBackend, HnswlibGraph, NativeGraph, type GraphIndex, type LabelFilter } from '../hnsw/index.js';
import type { Metadata } from './metadata.js';
import { MetadataIndex } from './metadata-index.js';
import { type ScanRows, scanNearest } from './exact-scan.js';
import { MemtableGraph } from './memtable-graph.js';

/** hnswlib-node's index (the hnswlib integration's type). */
export type HnswIndex = HnswlibIndex;
export type { Space } from '../hnsw/index.js';
import type { HnswlibIndex, Space } from '../hnsw/index.js';

export interface IndexParams {
  space: Space;
  dim: number;
  M: number;
  efConstruction: number;
}

/** A fresh, empty HNSW index, on the process's graph backend. */
export function newIndex(p: IndexParams, capacity: number): GraphIndex {
  return graphBackend() === 'native' ? NativeGraph.create(p, capacity) : HnswlibGraph.create(p, capacity);
}

/** Raw result of one layer's search: labels and distances, closest first. */
export interface LayerHits {
  neighbors: ArrayLike<number>;
  distances: ArrayLike<number>;
}

const NO_HITS: LayerHits = { neighbors: [], distances: [] };
/** Candidates beyond 2k that a native scan hands back to be measured again in double precision. */
const REFINE_MARGIN = 16;

/** The k closest of two hit lists, each closest first, with no label in both. */
function mergeHits(a: LayerHits, b: LayerHits, k: number): LayerHits {
  const neighbors: number[] = [];
  const distances: number[] = [];
  let i = 0;
  let j = 0;
  while (neighbors.length < k && (i < a.neighbors.length || j < b.neighbors.length)) {
    const takeA = j >= b.neighbors.length || (i < a.neighbors.length && (a.distances[i] as number) <= (b.distances[j] as number));
    if (takeA) {
      neighbors.push(a.neighbors[i] as number);
      distances.push(a.distances[i++] as number);
    } else {
      neighbors.push(b.neighbors[j] as number);
      distances.push(b.distances[j++] as number);
    }
  }
  return { neighbors, distances };
}

/**
 * One searchable set of records: a flushed segment group or a memtable.
 * Labels are local (0..n-1). A label is dead once its record was deleted or
 * superseded by a newer layer; dead labels are marked deleted in the HNSW
 * index so that search skips them without a callback.
 *
 * Vectors are held one of three ways: one array per record (a memtable), one
 * flat block (a segment loaded with its vector block), or only inside the
 * HNSW index, which keeps exact float32 copies for 'l2' and 'ip' (not for
 * 'cosine', whose vectors it normalizes): the index is then the only copy.
 */
export class Layer {
  readonly ids: string[] = [];
  readonly metadata: (Metadata | undefined)[] = [];
  private perRecord: Float32Array[] | undefined = [];
  private flat: Float32Array | undefined;
  /** How to make {@link flat} on first use (a loaded segment whose index holds the vectors exactly). */
  private lazyFlat: (() => Float32Array) | undefined;
  private dim = 0;
  private dead: Uint8Array;
  private deadCount = 0;
  /** Ids deleted while this layer was the memtable: they mask older layers. */
  readonly tombstones = new Set<string>();

  private made: GraphIndex | undefined;
  /** The graph's capacity, read once (a native call per search costs the unfiltered path); -1 until read or after a resize. */
  private maxElements = -1;
  private metaIndex: MetadataIndex | undefined;
  private readonly make: (() => GraphIndex) | undefined;
  /** Set for a tail (a layer searched by exact scan until a graph is attached): the space its scan measures in. */
  private scanSpace: Space | undefined;
  /** A memtable's graph grown in the background (memtable-graph.ts): it answers for a prefix of the labels. */
  grown: MemtableGraph | undefined;

  constructor(
    /**
     * The index, or (for a memtable) how to make it on first use: an empty HNSW index
     * costs megabytes, and most memtables of a store with many collections stay empty.
     */
    index: GraphIndex | (() => GraphIndex),
    capacity: number,
    /** Segment group id once flushed; undefined for a memtable. */
    public segmentId: number | undefined,
  ) {
    if (typeof index === 'function') this.make = index;
    else this.made = index;
    this.dead = new Uint8Array(Math.max(1, capacity));
  }

  /**
   * A layer without an HNSW graph (a memtable, or a segment whose graph is
   * being built off the caller's path): records are appended without any
   * graph work and searched by an exact scan, so they are searchable the
   * moment they are applied. {@link attachIndex} gives it its graph.
   */
  static tail(space: Space, dim: number, capacity = 1024): Layer {
    const layer = new Layer(
      () => {
        throw new UnsupportedOperationError('a tail layer has no HNSW graph until one is attached');
      },
      capacity,
      undefined,
    );
    layer.scanSpace = space;
    layer.dim = dim;
    return layer;
  }

  /** A memtable: a tail whose graph grows in the background as records arrive (native backend only). */
  static memtable(params: IndexParams): Layer {
    const layer = Layer.tail(params.space, params.dim);
    if (graphBackend() === 'native') layer.grown = new MemtableGraph(params, layer);
    return layer;
  }

  /** The rows of labels [from, to), as appended (the input of a background batch). */
  rowsBetween(from: number, to: number): Float32Array[] {
    if (!this.perRecord) throw new UnsupportedOperationError('only a memtable grows a graph');
    return this.perRecord.slice(from, to);
  }

  /** Whether the layer has no graph yet (searched by exact scan). */
  get isTail(): boolean {
    return this.scanSpace !== undefined;
  }

  /**
   * Gives a tail its graph, built elsewhere over labels 0..size-1 in order;
   * labels that died meanwhile are marked deleted in it.
   */
  attachIndex(index: GraphIndex): void {
    if (!this.isTail) throw new UnsupportedOperationError('the layer already has its graph');
    this.made = index;
    this.maxElements = -1;
    this.scanSpace = undefined;
    for (let label = 0; label < this.ids.length; label++) if (this.dead[label] === 1) index.markDelete(label);
  }

  /** Every record's vector in label order, one flat copy (count × dim): the input of a graph build. */
  flatVectors(): Float32Array {
    const n = this.ids.length;
    const out = new Float32Array(n * this.dim);
    // Copied as bytes: Float32Array#set at an offset into a large array ran about 40x slower here (1.3 s for 20,000 × 768, 34 ms as bytes).
    const bytes = new Uint8Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const v = this.vectorOf(i);
      bytes.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), i * this.dim * 4);
    }
    return out;
  }

  /** Every record's vector in label order, each a view of the layer's memory or a copy (callers must not modify them). */
  rows(): Float32Array[] {
    const out: Float32Array[] = new Array(this.ids.length);
    for (let i = 0; i < out.length; i++) out[i] = this.vectorOf(i);
    return out;
  }

  get index(): GraphIndex {
    this.made ??= (this.make as () => GraphIndex)();
    return this.made;
  }

  /** The inverted index of this layer's metadata, made on the first filtered search. */
  get metadataIndex(): MetadataIndex {
    this.metaIndex ??= new MetadataIndex(this.metadata);
    return this.metaIndex;
  }

  /** Whether an exact scan is cheap: the vectors are a memory read (not a copy out of the index), or the native graph scans them. */
  get canScan(): boolean {
    return this.perRecord !== undefined || this.flat !== undefined || this.lazyFlat !== undefined || this.scansNatively;
  }

  /**
   * A segment on the native backend whose index is its only copy of the vectors (exact for 'l2' and 'ip'): its exact
   * scans run in C++ on the graph's vectors (NativeGraph.scanLabels) rather than on a flat copy made for them.
   */
  private get scansNatively(): boolean {
    return !this.isTail && this.perRecord === undefined && this.flat === undefined && this.index instanceof NativeGraph;
  }

  /**
   * {@link load} for a segment whose index holds its vectors exactly ('l2', 'ip'): the flat copy that exact scans
   * and compaction read is made by `copy` on first use, so an open allocates no second copy of the vectors.
   */
  loadLazily(ids: string[], metadata: (Metadata | undefined)[], dim: number, copy: () => Float32Array): void {
    this.load(ids, metadata, undefined, dim);
    this.lazyFlat = copy;
  }

  /** The flat copy of the vectors, made now if it was left for first use. */
  private flatRows(): Float32Array | undefined {
    if (this.flat === undefined && this.lazyFlat !== undefined) {
      this.flat = this.lazyFlat();
      this.lazyFlat = undefined;
    }
    return this.flat;
  }

  get size(): number {
    return this.ids.length;
  }

  get live(): number {
    return this.ids.length - this.deadCount;
  }

  get hasDead(): boolean {
    return this.deadCount > 0;
  }

  isDead(label: number): boolean {
    return this.dead[label] === 1;
  }

  /** Appends a record (memtable); grows the index geometrically. */
  add(id: string, vector: Float32Array, metadata: Metadata | undefined): number {
    const label = this.ids.length;
    if (!this.perRecord) throw new UnsupportedOperationError('records are added to a memtable, not to a loaded segment');
    if (!this.isTail) {
      if (label >= this.index.getMaxElements()) {
        const next = Math.max(1024, this.index.getMaxElements() * 2);
        this.index.resizeIndex(next);
        this.maxElements = -1;
      }
      this.index.addPoint(vector, label);
    }
    if (label >= this.dead.length) {
      const grown = new Uint8Array(Math.max(this.dead.length * 2, label + 1));
      grown.set(this.dead);
      this.dead = grown;
    }
    this.ids.push(id);
    this.perRecord.push(vector);
    this.metadata.push(metadata);
    return label;
  }

  /**
   * Fills a layer whose index was loaded: labels 0..n-1 are `ids`, and the
   * vectors are `vectors` (count × dim, record i at i × dim) or, when
   * undefined, the index's own copies (exact for 'l2' and 'ip' only).
   */
  load(ids: string[], metadata: (Metadata | undefined)[], vectors: Float32Array | undefined, dim: number): void {
    for (let i = 0; i < ids.length; i++) {
      this.ids.push(ids[i] as string);
      this.metadata.push(metadata[i]);
    }
    this.perRecord = undefined;
    this.flat = vectors;
    this.dim = dim;
    if (this.dead.length < ids.length) this.dead = new Uint8Array(ids.length);
  }

  /**
   * Drops this layer's own copies of the vectors, leaving the index's (for a
   * flushed memtable in 'l2' or 'ip', whose index holds them exactly).
   */
  releaseVectors(): void {
    this.perRecord = undefined;
    this.flat = undefined;
    this.lazyFlat = undefined;
  }

  /**
   * The vector of `label`, exactly as inserted. A view of the layer's memory
   * or a fresh copy: callers must not modify it.
   */
  vectorOf(label: number): Float32Array {
    if (this.perRecord) return this.perRecord[label] as Float32Array;
    const flat = this.flatRows();
    if (flat) return flat.subarray(label * this.dim, (label + 1) * this.dim);
    return Float32Array.from(this.pointOf(label));
  }

  /** The index's copy of `label`, also when the label is marked deleted (superseded while being copied). */
  private pointOf(label: number): ArrayLike<number> {
    try {
      return this.index.getPoint(label);
    } catch (err) {
      try {
        this.index.unmarkDelete(label);
      } catch {
        throw err;
      }
      try {
        return this.index.getPoint(label);
      } finally {
        this.index.markDelete(label);
      }
    }
  }

  markDead(label: number): void {
    if (this.dead[label] === 1) return;
    this.dead[label] = 1;
    this.deadCount += 1;
    this.grown?.kill(label);
    if (this.isTail) return;
    try {
      this.index.markDelete(label);
    } catch {
      // Already marked in a loaded index: it was superseded while its segment was being written.
    }
  }

  /** Nearest live labels, closest first, optionally restricted by a metadata predicate. */
  search(query: number[], k: number, ef: number, accept?: (m: Metadata | undefined, id: string) => boolean): LayerHits {
    if (this.live === 0) return NO_HITS;
    if (this.scanSpace !== undefined) {
      const { metadata, ids } = this;
      const indexed = accept === undefined ? (this.grown?.indexed ?? 0) : 0;
      if (indexed > 0) return this.searchGrown(query, k, ef, indexed);
      return this.scanExact(query, k, this.scanSpace, undefined, accept && ((label) => accept(metadata[label], ids[label] as string)));
    }
    const { metadata, ids } = this;
    return this.searchIndex(query, k, ef, accept && ((label) => accept(metadata[label], ids[label] as string)));
  }

  /**
   * For an unfiltered search over several groups at once
   * (NativeGraph.searchEach): this layer's native graph, its ef set as
   * {@link searchIndex} sets it, and how many neighbours to ask it for.
   * Undefined for a tail, an empty layer or the hnswlib-node fallback.
   */
  graphForSearch(k: number, ef: number): { graph: NativeGraph; n: number } | undefined {
    if (this.isTail || this.live === 0) return undefined;
    const index = this.index;
    if (!(index instanceof NativeGraph)) return undefined;
    if (this.maxElements < 0) this.maxElements = index.getMaxElements();
    const n = Math.min(k, this.maxElements);
    index.setEf(Math.max(ef, n));
    return { graph: index, n };
  }

  /**
   * A memtable whose graph answers for labels 0..indexed-1: the graph's
   * nearest there, merged with an exact scan of the labels after them.
   */
  private searchGrown(query: number[], k: number, ef: number, indexed: number): LayerHits {
    const fromGraph = (this.grown as MemtableGraph).search(Float32Array.from(query), k, ef);
    const rows: ScanRows = { perRow: this.perRecord as Float32Array[], dim: this.dim };
    const fromScan =
      indexed < this.ids.length
        ? scanNearest(rows, query, k, this.scanSpace as Space, this.dead, undefined, this.ids.length, undefined, indexed)
        : NO_HITS;
    if (!fromGraph) return fromScan;
    return mergeHits(fromGraph, fromScan, k);
  }

  /**
   * The HNSW graph's nearest live labels, closest first, optionally restricted to the labels `admit` accepts: a
   * predicate (called from native code) or a bitmap of labels (tested in C++ by the native backend).
   */
  searchIndex(query: number[], k: number, ef: number, admit?: LabelFilter): LayerHits {
    if (this.maxElements < 0) this.maxElements = this.index.getMaxElements();
    const n = Math.min(k, this.maxElements);
    this.index.setEf(Math.max(ef, n));
    // The native binding copies a Float32Array's bytes in one step; an array costs one N-API call per component.
    const q = this.index.backend === 'native' ? Float32Array.from(query) : query;
    return admit ? this.index.searchKnn(q, n, admit) : this.index.searchKnn(q, n);
  }

  /**
   * Exact k nearest live labels among `lists` (every label when undefined),
   * closest first, with distances as hnswlib reports them (exact-scan.ts).
   * Only for a layer whose vectors are a memory read ({@link canScan}).
   */
  scanExact(
    query: number[],
    k: number,
    space: Space,
    lists: readonly (readonly number[])[] | undefined,
    admit?: (label: number) => boolean,
  ): LayerHits {
    if (this.scansNatively) return this.scanNative(this.index as NativeGraph, query, k, space, lists, admit);
    const rows: ScanRows | undefined = this.perRecord
      ? { perRow: this.perRecord, dim: this.dim }
      : this.flatRows() !== undefined
        ? { flat: this.flatRows() as Float32Array, dim: this.dim }
        : undefined;
    if (!rows) throw new UnsupportedOperationError('the layer keeps its vectors only in its HNSW index: no exact scan');
    return scanNearest(rows, query, k, space, this.dead, lists, this.ids.length, admit);
  }

  /**
   * {@link scanExact} on the native backend: the live, admitted labels are
   * gathered here (the dead bitmap and the filter are JavaScript's) and
   * ranked in C++ by the graph's own SIMD distance on its own vectors, so no
   * flat copy of the vectors is made for it. The few best are then measured
   * again exactly as the JavaScript scan measures (double precision): a
   * record scores the same whichever kind of layer holds it, before and
   * after a flush, a compaction or a restore.
   */
  private scanNative(
    index: NativeGraph,
    query: number[],
    k: number,
    space: Space,
    lists: readonly (readonly number[])[] | undefined,
    admit: ((label: number) => boolean) | undefined,
  ): LayerHits {
    const dead = this.dead;
    let bound = 0;
    if (lists === undefined) bound = this.ids.length;
    else for (const list of lists) bound += list.length;
    const labels = new Uint32Array(bound);
    let n = 0;
    const take = (label: number): void => {
      if (dead[label] !== 1 && (admit === undefined || admit(label))) labels[n++] = label;
    };
    if (lists === undefined) for (let label = 0; label < bound; label++) take(label);
    else for (const list of lists) for (let i = 0; i < list.length; i++) take(list[i] as number);
    if (n === 0 || k === 0) return NO_HITS;
    // Float and double rankings can differ only among near ties: a margin of candidates keeps the exact k among them.
    const coarse = index.scanLabels(Float32Array.from(query), Math.min(n, 2 * k + REFINE_MARGIN), labels.subarray(0, n));
    const m = coarse.neighbors.length;
    const rows = Array.from(coarse.neighbors, (label) => this.pointOf(label) as Float32Array);
    const fine = scanNearest({ perRow: rows, dim: this.dim }, query, Math.min(k, m), space, new Uint8Array(m), undefined, m);
    return { neighbors: fine.neighbors.map((i) => coarse.neighbors[i] as number), distances: fine.distances };
  }
}
