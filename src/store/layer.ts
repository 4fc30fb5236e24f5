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
    if (label >= this.index.getMaxElements()) {
      const next = Math.max(1024, this.index.getMaxElements() * 2);
      this.index.resizeIndex(next);
    }
    this.index.addPoint(Array.from(vector), label);
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
    try {
      this.index.markDelete(label);
    } catch {
      // Already marked in a loaded index: it was superseded while its segment was being written.
    }
  }

  /** Nearest live labels, closest first, optionally restricted by a metadata predicate. */
  search(query: number[], k: number, ef: number, accept?: (m: Metadata | undefined, id: string) => boolean): LayerHits {
    if (this.live === 0) return NO_HITS;
    const n = Math.min(k, this.index.getMaxElements());
    this.index.setEf(Math.max(ef, n));
    return accept ? this.index.searchKnn(query, n, (label) => accept(this.metadata[label], this.ids[label] as string)) : this.index.searchKnn(query, n);
  }
}
