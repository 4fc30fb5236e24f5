import { pino, type Logger, type DestinationStream } from 'pino';

export interface AuditOptions {
  /** File the audit lines are appended to (created with its directory, mode 0600). */
  file: string;
  /** Also write every line to stdout (the CLI does). */
  stdout?: boolean;
}

/** One audit line: what was asked, by whom, on which key, and how it ended. Never key material. */
export interface AuditRecord {
  requestId: string;
  remoteAddress?: string;
  principal?: string;
  accessKeyId?: string;
  operation?: string;
  keyArns?: string[];
  encryptionContext?: Record<string, string>;
  outcome: 'success' | 'denied' | 'error';
  errorType?: string;
  status: number;
  durationMs: number;
}

export interface AuditLog {
  record(entry: AuditRecord): void;
  close(): Promise<void>;
}

/**
 * The key service's audit trail on pino. Writes are synchronous so an
 * acknowledged request is already on record if the process dies right after.
 */
export function createAuditLog(options: AuditOptions): AuditLog {
  const file = pino.destination({ dest: options.file, sync: true, mkdir: true, mode: 0o600 });
  const streams: DestinationStream = options.stdout
    ? pino.multistream([{ stream: file }, { stream: process.stdout }])
    : file;
  const logger: Logger = pino({ base: { service: 'vectorseal-kms' }, timestamp: pino.stdTimeFunctions.isoTime }, streams);
  return {
    record(entry) {
      logger.info({ audit: entry }, entry.outcome);
    },
    async close() {
      file.flushSync();
      file.end();
    },
  };
}
