// Moved to src/util/durable.ts (the file layer). This re-export keeps imports
// from branches written against the old path compiling until they are re-pointed.
export {
  createFileAtomic,
  createFileExclusive,
  exists,
  fsyncDir,
  mkdirDurable,
  removeStaleTemps,
  storageError,
  writeFileAtomic,
  writeFileDurable,
} from '../util/durable.js';
