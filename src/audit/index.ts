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
