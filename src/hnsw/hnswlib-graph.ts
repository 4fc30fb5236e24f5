import hnswlib from 'hnswlib-node';
import type { GraphHits, GraphIndex, GraphParams, LabelFilter } from './graph.js';

const { HierarchicalNSW } = hnswlib;
/** hnswlib-node's index class. */
export type HnswlibIndex = InstanceType<typeof HierarchicalNSW>;

/**
 * A graph held by hnswlib-node: the fallback when vectorseal's own addon is
 * not built (or VECTORSEAL_HNSW=hnswlib-node). It serializes only through a
 * file path: the store's staging-file paths use {@link raw}.
 */
export class HnswlibGraph implements GraphIndex {
  readonly backend = 'hnswlib-node';

  constructor(readonly raw: HnswlibIndex) {}

  /** An empty graph with room for `capacity` points (seed 100). */
  static create(p: GraphParams, capacity: number): HnswlibGraph {
    const index = new HierarchicalNSW(p.space, p.dim);
    index.initIndex({ maxElements: Math.max(1, capacity), m: p.M, efConstruction: p.efConstruction, randomSeed: 100 });
    return new HnswlibGraph(index);
  }

  /** An uninitialized index, for hnswlib-node's readIndex. */
  static empty(p: Pick<GraphParams, 'space' | 'dim'>): HnswlibGraph {
    return new HnswlibGraph(new HierarchicalNSW(p.space, p.dim));
  }

  addPoint(point: Float32Array, label: number): void {
    this.raw.addPoint(Array.from(point), label);
  }

  searchKnn(query: number[] | Float32Array, k: number, filter?: LabelFilter): GraphHits {
    const q = Array.isArray(query) ? query : Array.from(query);
    if (filter === undefined) return this.raw.searchKnn(q, k);
    if (typeof filter === 'function') return this.raw.searchKnn(q, k, filter);
    const bits = filter;
    return this.raw.searchKnn(q, k, (label) => bits[label] === 1);
  }

  markDelete(label: number): void {
    this.raw.markDelete(label);
  }

  unmarkDelete(label: number): void {
    this.raw.unmarkDelete(label);
  }

  getPoint(label: number): number[] {
    return this.raw.getPoint(label);
  }

  getCurrentCount(): number {
    return this.raw.getCurrentCount();
  }

  getMaxElements(): number {
    return this.raw.getMaxElements();
  }

  resizeIndex(maxElements: number): void {
    this.raw.resizeIndex(maxElements);
  }

  setEf(ef: number): void {
    this.raw.setEf(ef);
  }
}
