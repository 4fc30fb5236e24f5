import hnswlib from 'hnswlib-node';
import type { Metadata } from './metadata.js';

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

export interface Hit {
  layer: Layer;
  label: number;
  distance: number;
}

/**
 * One searchable set of records: a flushed segment group or a memtable.
 * Labels are local (0..n-1). A label is dead once its record was deleted or
 * superseded by a newer layer; dead labels are marked deleted in the HNSW
 * index so that search skips them without a callback.
 */
export class Layer {
  readonly ids: string[] = [];
  readonly vectors: Float32Array[] = [];
  readonly metadata: (Metadata | undefined)[] = [];
  private dead: Uint8Array;
  private deadCount = 0;
  /** Ids deleted while this layer was the memtable: they mask older layers. */
  readonly tombstones = new Set<string>();

  constructor(
    readonly index: HnswIndex,
    capacity: number,
    /** Segment group id once flushed; undefined for a memtable. */
    public segmentId: number | undefined,
  ) {
    this.dead = new Uint8Array(Math.max(1, capacity));
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
    if (label >= this.index.getMaxElements()) {
      const next = Math.max(1024, this.index.getMaxElements() * 2);
      this.index.resizeIndex(next);
    }
    this.index.addPoint(Array.from(vector), label);
    this.push(id, vector, metadata);
    return label;
  }

  /** Registers a record already present in a loaded index at the next label. */
  push(id: string, vector: Float32Array, metadata: Metadata | undefined): void {
    const label = this.ids.length;
    if (label >= this.dead.length) {
      const grown = new Uint8Array(Math.max(this.dead.length * 2, label + 1));
      grown.set(this.dead);
      this.dead = grown;
    }
    this.ids.push(id);
    this.vectors.push(vector);
    this.metadata.push(metadata);
  }

  markDead(label: number): void {
    if (this.dead[label] === 1) return;
    this.dead[label] = 1;
    this.deadCount += 1;
    this.index.markDelete(label);
  }

  /** Nearest live labels, optionally restricted by a metadata predicate. */
  search(query: number[], k: number, ef: number, accept?: (m: Metadata | undefined) => boolean): Hit[] {
    if (this.live === 0) return [];
    const n = Math.min(k, this.index.getMaxElements());
    this.index.setEf(Math.max(ef, n));
    const res = accept
      ? this.index.searchKnn(query, n, (label) => accept(this.metadata[label]))
      : this.index.searchKnn(query, n);
    return res.neighbors.map((label, i) => ({ layer: this, label, distance: res.distances[i] as number }));
  }
}
