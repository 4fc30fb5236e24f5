import { join } from 'node:path';

/** Name of a store's audit trail file inside its directory. */
export const AUDIT_FILE_NAME = 'audit.log';

/** The audit trail file of the store at `dir`. */
export function auditFilePath(dir: string): string {
  return join(dir, AUDIT_FILE_NAME);
}
