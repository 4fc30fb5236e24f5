export {
  VectorsealNodeStore,
  type VectorsealNodeStoreArgs,
  type VectorsealNodeStoreOpenArgs,
  type VectorsealNodeCollectionArgs,
} from './vector-store.js';
export { compileMetadataFilters, type NodePredicate } from './filters.js';
