import { pino, type Logger } from 'pino';
import { REDACTED_FIELDS } from '../util/redacted-fields.js';

/**
 * Fields that could carry data are redacted wherever they appear (top level
 * or one level down), so that a mistaken log call cannot leak a vector,
 * metadata, an id list or key material.
 */
export const REDACT_PATHS = [...REDACTED_FIELDS, ...REDACTED_FIELDS.map((f) => `*.${f}`)];

export type { Logger };

/** The default logger: silent unless VECTORSEAL_LOG_LEVEL is set; writes to stderr. */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env['VECTORSEAL_LOG_LEVEL'] ?? 'silent';
  return pino(
    { name: 'vectorseal', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    (options.destination ?? pino.destination(2)) as pino.DestinationStream,
  );
}

/** A child of a caller's logger with our redaction applied on top. */
export function wrapLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
