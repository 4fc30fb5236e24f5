import { NativeGraph } from './native-graph.js';

/** Which binding holds the store's graphs. */
export type GraphBackend = 'native' | 'hnswlib-node';

let chosen: GraphBackend | undefined;

/**
 * vectorseal's own addon when it is built and loads, else hnswlib-node (with
 * one warning per process). VECTORSEAL_HNSW=hnswlib-node forces the
 * fallback: it can only choose the older path, never name a module to load.
 */
export function graphBackend(): GraphBackend {
  if (chosen) return chosen;
  if (process.env['VECTORSEAL_HNSW'] === 'hnswlib-node') chosen = 'hnswlib-node';
  else if (NativeGraph.available()) chosen = 'native';
  else {
    chosen = 'hnswlib-node';
    process.emitWarning(
      'vectorseal: the native HNSW addon (src/hnsw/native) is not built; graphs are built and loaded with hnswlib-node ' +
        'through a RAM-backed staging file',
      { code: 'VECTORSEAL_HNSW_FALLBACK' },
    );
  }
  return chosen;
}
