export { backupStore, type BackupOptions, type BackupProgress, type BackupReport } from './backup.js';
export { restoreBackup, type RestoreOptions, type RestoreReport, type RewrapOptions } from './restore.js';
export { verifyBackup, type BackupKeyOptions, type VerifyBackupOptions, type VerifyBackupReport } from './verify.js';
export {
  BACKUP_FILE,
  BACKUP_FORMAT,
  BACKUP_VERSION,
  type BackupCollectionEntry,
  type BackupFileEntry,
  type BackupManifest,
} from './format.js';
