export { openStore, Store, type OpenStoreOptions, type CreateCollectionOptions, type CollectionSummary, type KeysOption } from './store.js';
export {
  Collection,
  type VectorRecord,
  type StoredRecord,
  type SearchOptions,
  type SearchResult,
  type CollectionStats,
  type CompactionReport,
  type FlushTimings,
} from './collection.js';
export type { Filter, TypedFilter, Condition } from './filter.js';
export type { ListOptions, RecordPage } from './query-api.js';
export type { MetadataUpdate } from './records.js';
export type { Metadata } from './metadata.js';
export { MAX_METADATA_BYTES } from './metadata.js';
export { MAX_ID_BYTES } from './validate.js';
export type { Space } from './layer.js';
export type { TenantKekOption, MaintenanceReport } from './tenants.js';
export type { ReencryptionProgress, ReencryptionReport } from './reencrypt.js';
export { upgradeStore, type UpgradeStoreOptions } from './upgrade.js';
export {
  importRecords,
  type ImportOptions,
  type ImportProgress,
  type ImportReport,
  type ImportSource,
  type ImportStop,
  type SourceRecord,
} from './import.js';
export { STATE_FILE, STATE_SYSTEM_KEY, initializeStoreState } from './state.js';
