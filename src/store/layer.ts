import hnswlib from 'hnswlib-node';
import { UnsupportedOperationError } from '../errors.js';
import type { Metadata } from './metadata.js';
import { MetadataIndex } from './metadata-index.js';

const { HierarchicalNSW } = hnswlib;
export type HnswIndex = InstanceType<typeof HierarchicalNSW>;
export type Space = 'l2' | 'ip' | 'cosine';

export interface IndexParams {
  space: Space;
  dim: number;
  M: number;
  efConstruction: number;
}

/** A fresh, empty HNSW index. */
export function newIndex(p: IndexParams, capacity: number): HnswIndex {
  const index = new HierarchicalNSW(p.space, p.dim);
  index.initIndex({ maxElements: Math.max(1, capacity), m: p.M, efConstruction: p.efConstruction, randomSeed: 100 });
  return index;
}

export function emptyIndex(p: IndexParams): HnswIndex {
  return new HierarchicalNSW(p.space, p.dim);
}

/** Raw result of one layer's search: labels and distances, closest first. */
export interface LayerHits {
  neighbors: number[];
  distances: number[];
}

const NO_HITS: LayerHits = { neighbors: [], distances: [] };

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
  private dim = 0;
  private dead: Uint8Array;
  private deadCount = 0;
  /** Ids deleted while this layer was the memtable: they mask older layers. */
  readonly tombstones = new Set<string>();

  private made: HnswIndex | undefined;
  private metaIndex: MetadataIndex | undefined;
  private readonly make: (() => HnswIndex) | undefined;
  /** Set for a tail (a layer searched by exact scan until a graph is attached): the space its scan measures in. */
  private scanSpace: Space | undefined;

  constructor(
    /** The index, or (for a memtable) how to make it on first use: an empty HNSW index costs megabytes, and most memtables of a store with many collections stay empty. */
    index: HnswIndex | (() => HnswIndex),
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
    const layer = new Layer(() => {
      throw new UnsupportedOperationError('a tail layer has no HNSW graph until one is attached');
    }, capacity, undefined);
    layer.scanSpace = space;
    layer.dim = dim;
    return layer;
  }

  /** Whether the layer has no graph yet (searched by exact scan). */
  get isTail(): boolean {
    return this.scanSpace !== undefined;
  }

  /**
   * Gives a tail its graph, built elsewhere over labels 0..size-1 in order;
   * labels that died meanwhile are marked deleted in it.
   */
  attachIndex(index: HnswIndex): void {
    if (!this.isTail) throw new UnsupportedOperationError('the layer already has its graph');
    this.made = index;
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

  get index(): HnswIndex {
    this.made ??= (this.make as () => HnswIndex)();
    return this.made;
  }

  /** The inverted index of this layer's metadata, made on the first filtered search. */
  get metadataIndex(): MetadataIndex {
    this.metaIndex ??= new MetadataIndex(this.metadata);
    return this.metaIndex;
  }

  /** Whether {@link vectorOf} is a memory read (not a copy out of the index), so that an exact scan is cheap. */
  get canScan(): boolean {
    return this.perRecord !== undefined || this.flat !== undefined;
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
      }
      this.index.addPoint(Array.from(vector), label);
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
  }

  /**
   * The vector of `label`, exactly as inserted. A view of the layer's memory
   * or a fresh copy: callers must not modify it.
   */
  vectorOf(label: number): Float32Array {
    if (this.perRecord) return this.perRecord[label] as Float32Array;
    if (this.flat) return this.flat.subarray(label * this.dim, (label + 1) * this.dim);
    return Float32Array.from(this.pointOf(label));
  }

  /** The index's copy of `label`, also when the label is marked deleted (superseded while being copied). */
  private pointOf(label: number): number[] {
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
    if (this.scanSpace !== undefined) return this.scan(query, k, this.scanSpace, accept);
    const n = Math.min(k, this.index.getMaxElements());
    this.index.setEf(Math.max(ef, n));
    return accept ? this.index.searchKnn(query, n, (label) => accept(this.metadata[label], this.ids[label] as string)) : this.index.searchKnn(query, n);
  }

  /**
   * Exact k nearest live labels of a tail, closest first, with distances as
   * hnswlib reports them (squared L2; 1 - dot for 'ip'; 1 - cosine for
   * 'cosine'), so its hits merge with the graphs' hits.
   */
  private scan(query: number[], k: number, space: Space, accept?: (m: Metadata | undefined, id: string) => boolean): LayerHits {
    const dim = this.dim;
    let q = query;
    if (space === 'cosine') {
      let norm = 0;
      for (let i = 0; i < dim; i++) norm += (q[i] as number) * (q[i] as number);
      norm = Math.sqrt(norm) || 1;
      q = q.map((x) => x / norm);
    }
    // A max-heap of the k best so far (worst on top), kept as parallel arrays.
    const heapLabel: number[] = [];
    const heapDist: number[] = [];
    const swap = (a: number, b: number): void => {
      const l = heapLabel[a] as number;
      heapLabel[a] = heapLabel[b] as number;
      heapLabel[b] = l;
      const d = heapDist[a] as number;
      heapDist[a] = heapDist[b] as number;
      heapDist[b] = d;
    };
    for (let label = 0; label < this.ids.length; label++) {
      if (this.dead[label] === 1) continue;
      const v = this.vectorOf(label);
      let d = 0;
      if (space === 'l2') {
        for (let i = 0; i < dim; i++) {
          const x = (v[i] as number) - (q[i] as number);
          d += x * x;
        }
      } else {
        let dot = 0;
        let norm = 0;
        for (let i = 0; i < dim; i++) {
          const x = v[i] as number;
          dot += x * (q[i] as number);
          norm += x * x;
        }
        d = 1 - (space === 'cosine' ? dot / (Math.sqrt(norm) || 1) : dot);
      }
      if (heapLabel.length === k && d >= (heapDist[0] as number)) continue;
      if (accept && !accept(this.metadata[label], this.ids[label] as string)) continue;
      if (heapLabel.length < k) {
        heapLabel.push(label);
        heapDist.push(d);
        for (let c = heapLabel.length - 1; c > 0; ) {
          const p = (c - 1) >> 1;
          if ((heapDist[p] as number) >= (heapDist[c] as number)) break;
          swap(p, c);
          c = p;
        }
      } else {
        heapLabel[0] = label;
        heapDist[0] = d;
        for (let p = 0; ; ) {
          const l = 2 * p + 1;
          const r = l + 1;
          let m = p;
          if (l < k && (heapDist[l] as number) > (heapDist[m] as number)) m = l;
          if (r < k && (heapDist[r] as number) > (heapDist[m] as number)) m = r;
          if (m === p) break;
          swap(p, m);
          p = m;
        }
      }
    }
    const order = heapLabel.map((_, i) => i).sort((a, b) => (heapDist[a] as number) - (heapDist[b] as number));
    return { neighbors: order.map((i) => heapLabel[i] as number), distances: order.map((i) => heapDist[i] as number) };
  }
}
