import { loadOwnAddon } from '../util/native-addon.js';

/** The class the addon (src/hnsw/native/graph.cc) exports; every error it throws has a `code` (BUSY, FORMAT, ARG, HNSW). */
export interface AddonGraph {
  initIndex(maxElements: number, M: number, efConstruction: number, randomSeed: number): void;
  addPoint(point: Float32Array | number[], label: number): void;
  addBatch(vectors: Float32Array | readonly Float32Array[], firstLabel: number, threads: number): Promise<void>;
  searchKnn(
    query: Float32Array | number[],
    k: number,
    filter?: Uint8Array | ((label: number) => boolean),
  ): {
    neighbors: Uint32Array;
    distances: Float32Array;
  };
  scanLabels(query: Float32Array | number[], k: number, labels: Uint32Array): { neighbors: Uint32Array; distances: Float32Array };
  markDelete(label: number): void;
  unmarkDelete(label: number): void;
  getPoint(label: number): Float32Array;
  getIdsList(): number[];
  getCurrentCount(): number;
  getMaxElements(): number;
  resizeIndex(maxElements: number): void;
  setEf(ef: number): void;
  serializedSize(): number;
  serializeInto(out: Uint8Array): number;
  deserialize(bytes: Uint8Array): Promise<void>;
  loadBegin(total: number): void;
  loadPush(bytes: Uint8Array): void;
  loadEnd(): Promise<void>;
  loadAbort(): void;
  serializeRange(out: Uint8Array, offset: number): number;
  copyVectors(out: Float32Array): void;
  labelsDense(): boolean;
  busy(): boolean;
  free(): void;
}

/** The addon's Graph class: its constructor and its one static method (see NativeGraph.searchEach). */
export interface AddonGraphClass {
  new (space: string, dim: number): AddonGraph;
  searchEach(graphs: AddonGraph[], query: Float32Array, ks: number[]): { neighbors: Uint32Array; distances: Float32Array }[];
}

export interface HnswAddon {
  Graph: AddonGraphClass;
  headerSize: number;
}

let loaded: { addon: HnswAddon; path: string } | null | undefined;

/**
 * The addon and its path (src/hnsw/native/build/Release/vectorseal_hnsw.node,
 * found from this module's own location), or undefined when it is not built
 * or fails to load: the store then falls back to hnswlib-node.
 */
export function loadHnswAddon(): { addon: HnswAddon; path: string } | undefined {
  if (loaded === undefined) {
    loaded = loadOwnAddon<HnswAddon>(import.meta.url, ['src', 'hnsw', 'native', 'build', 'Release'], 'vectorseal_hnsw.node') ?? null;
  }
  return loaded ?? undefined;
}
