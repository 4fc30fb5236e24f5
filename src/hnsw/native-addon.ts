import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

export interface HnswAddon {
  Graph: new (space: string, dim: number) => AddonGraph;
  headerSize: number;
}

const ADDON_FILE = 'vectorseal_hnsw.node';

/**
 * Where node-gyp leaves the addon: src/hnsw/native/build/Release. Found by
 * walking up from this module (src/hnsw in tests, dist/hnsw in the package):
 * the path comes from the package's own location, never from the data
 * directory, the environment or any other input.
 */
function candidatePaths(): string[] {
  const paths: string[] = [];
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    paths.push(join(dir, 'src', 'hnsw', 'native', 'build', 'Release', ADDON_FILE));
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return paths;
}

let loaded: { addon: HnswAddon; path: string } | null | undefined;

/** The addon and its path, or undefined when it is not built or fails to load. */
export function loadHnswAddon(): { addon: HnswAddon; path: string } | undefined {
  if (loaded === undefined) {
    loaded = null;
    const require = createRequire(import.meta.url);
    for (const path of candidatePaths()) {
      if (!existsSync(path)) continue;
      try {
        loaded = { addon: require(path) as HnswAddon, path };
        break;
      } catch {
        // A stale build for another Node ABI: try the next, else the store falls back to hnswlib-node.
      }
    }
  }
  return loaded ?? undefined;
}
