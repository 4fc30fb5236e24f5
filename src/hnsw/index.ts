export { graphBackend, type GraphBackend } from './backend.js';
export type { GraphHits, GraphIndex, GraphParams, LabelFilter, Space } from './graph.js';
export { HnswlibGraph, type HnswlibIndex } from './hnswlib-graph.js';
export { NativeGraph, type GraphLoader } from './native-graph.js';
