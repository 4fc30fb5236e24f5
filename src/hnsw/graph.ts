/*
 * What the store uses of an HNSW graph, whichever backend holds it: vectorseal's
 * own binding of hnswlib (native-graph.ts) or hnswlib-node (hnswlib-graph.ts).
 */

export type Space = 'l2' | 'ip' | 'cosine';

/** The parameters a graph is built with. */
export interface GraphParams {
  space: Space;
  dim: number;
  M: number;
  efConstruction: number;
}

/** Labels and distances, closest first (hnswlib's distances: squared L2, 1 - dot). */
export interface GraphHits {
  neighbors: ArrayLike<number>;
  distances: ArrayLike<number>;
}

/** A filter on labels: a bitmap (label i allowed when bits[i] is non-zero) or a predicate. */
export type LabelFilter = Uint8Array | ((label: number) => boolean);

/** An HNSW graph. */
export interface GraphIndex {
  /** Which binding holds the graph. */
  readonly backend: 'native' | 'hnswlib-node';
  addPoint(point: Float32Array, label: number): void;
  searchKnn(query: number[] | Float32Array, k: number, filter?: LabelFilter): GraphHits;
  markDelete(label: number): void;
  unmarkDelete(label: number): void;
  /** The graph's copy of a point (normalized for 'cosine'); throws for a missing or deleted label. */
  getPoint(label: number): ArrayLike<number>;
  getCurrentCount(): number;
  getMaxElements(): number;
  resizeIndex(maxElements: number): void;
  setEf(ef: number): void;
}
