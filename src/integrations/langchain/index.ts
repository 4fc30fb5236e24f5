export { VectorsealVectorStore, type VectorsealStoreArgs, type VectorsealLibArgs, type VectorsealCollectionArgs } from './vector-store.js';
export { migrateHNSWLib, HNSWLIB_FILES, type HNSWLibMigrationReport } from './migrate-hnswlib.js';
export type { VectorsealFilter } from './records.js';
