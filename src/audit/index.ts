/**
 * Tamper-evident audit trail of key operations.
 *
 * What it guarantees, given an attacker who can edit the file but not read the
 * audit key: a modified, deleted, inserted (forged or replayed) or reordered
 * entry is detected and the first bad one named; a cut tail is detected when
 * the caller keeps `head()` elsewhere, or, without it, when the trail was
 * closed cleanly (the last entry must be the close checkpoint). What it cannot
 * catch without a kept head: the file rolled back to an earlier copy that
 * itself ended with a close checkpoint, or the whole file deleted. One process
 * writes a trail at a time.
 */
export { AuditTrail, type AuditTrailOptions } from './audit-trail.js';
export { AUDIT_FILE_NAME, auditFilePath } from './file-name.js';
export { formatAuditHead, parseAuditHead } from './head.js';
export { AUDIT_KEY_LABEL, deriveAuditMacKey } from './audit-key.js';
export { canonicalJson } from './canonical-json.js';
export {
  AUDIT_FORMAT_VERSION,
  CHECKPOINT_ACTION,
  TRAIL_OPEN_ACTION,
  type AuditDetailValue,
  type AuditEntry,
  type AuditEvent,
  type AuditHead,
  type AuditOutcome,
  parseEntry,
} from './entry.js';
export { REDACT_PATHS, REDACTED_FIELDS, detailNameAllowed, sanitizeEvent } from './redaction.js';
export { readTrailLines, type TrailLine } from './line-reader.js';
export {
  assertAuditTrailIntact,
  verifyAuditTrail,
  type AuditProblem,
  type AuditTrailIntact,
  type AuditTrailTampered,
  type AuditVerification,
  type VerifyAuditTrailOptions,
} from './verify.js';
