export {
  writeIndexSealed,
  readIndexSealed,
  sealedIndexInfo,
  rotateSealedIndexKek,
  SEALED_INDEX_COLLECTION,
  type WriteSealedOptions,
  type ReadSealedOptions,
  type SealedIndexStoreOptions,
  type SealedIndexInfo,
} from './sealed-index.js';
