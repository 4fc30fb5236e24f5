import { errorCode } from '../errors.js';

/** One key use, for the audit trail. Never holds key material. */
export interface KeyAuditEvent {
  action:
    | 'generate'
    | 'unwrap'
    | 'rewrap'
    | 'wrap'
    | 'rotate-kek'
    | 'rekey'
    | 'retire-dek'
    | 'destroy'
    | 'disable'
    | 'enable'
    | 'schedule-deletion'
    | 'cancel-deletion'
    | 'shred'
    | 'add-kek'
    | 'remove-kek'
    | 'denied';
  outcome: 'ok' | 'error' | 'denied';
  principal?: string;
  collectionId?: string;
  tenant?: string;
  kek?: string;
  keyId?: string;
  kekVersion?: string;
  dekVersion?: number;
  /** The error's stable code when outcome is 'error'. */
  error?: string;
  /** Counts and other non-secret facts of an event that covers many keys (a rotation's rewraps). */
  details?: Record<string, string | number | boolean>;
}

/** Sends key events to the caller's sink, stamped with the principal. */
export class KeyAuditor {
  constructor(
    private readonly sink: ((event: KeyAuditEvent) => void) | undefined,
    private readonly principal: string | undefined,
  ) {}

  emit(event: KeyAuditEvent): void {
    if (!this.sink) return;
    this.sink(this.principal === undefined ? event : { principal: this.principal, ...event });
  }

  /** Runs `fn` and records its outcome (the error's code when it fails). */
  async audited<T>(event: Omit<KeyAuditEvent, 'outcome'>, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.emit({ ...event, outcome: 'ok' });
      return result;
    } catch (err) {
      this.emit({ ...event, outcome: 'error', error: errorCode(err) });
      throw err;
    }
  }
}
