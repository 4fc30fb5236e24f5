import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The XKS proxy's audit log: one pino line per call with the request
 * metadata (awsPrincipalArn, kmsKeyArn, kmsOperation, kmsRequestId,
 * kmsViaService, awsSourceVpc, awsSourceVpce), who signed it, the outcome
 * and the processing time. Plaintext, ciphertext and AAD are never given to
 * it. Written synchronously: an answered request is already on record.
 */

export interface XksAuditRecord {
  requestId: string;
  operation?: string;
  externalKeyId?: string;
  requestMetadata?: Record<string, string>;
  accessKeyId?: string;
  clientCertSubject?: string;
  remoteAddress?: string;
  /** The authorization rule that allowed the call, or why none did. */
  authorization?: string;
  status: number;
  errorName?: string;
  durationMs: number;
}

export interface XksAuditLog {
  record(entry: XksAuditRecord): void;
  close(): Promise<void>;
}

export function createXksAuditLog(options: { file: string; stdout?: boolean }): XksAuditLog {
  const file = pino.destination({ dest: options.file, sync: true, mkdir: true, mode: 0o600 });
  const streams: DestinationStream = options.stdout ? pino.multistream([{ stream: file }, { stream: process.stdout }]) : file;
  const logger: Logger = pino({ base: { service: 'vectorseal-xks' }, timestamp: pino.stdTimeFunctions.isoTime }, streams);
  return {
    record(entry) {
      logger.info({ audit: entry }, entry.errorName === undefined ? 'ok' : entry.errorName);
    },
    async close() {
      file.flushSync();
      file.end();
    },
  };
}
