import type { AuditEvent, AuditTrail } from '../audit/index.js';
import type { KeyAuditEvent } from '../keys/key-manager.js';
import type { Logger } from './logger.js';

/**
 * Where a store's audit events go: its MAC-chained trail, plus the
 * application's own `audit` callback for key events. Key events happen
 * before the trail can exist (the trail's key is itself unwrapped from the
 * keyring), so they are held until it is attached and then written in order.
 */
export class AuditSink {
  private trail: AuditTrail | undefined;
  private pending: AuditEvent[] = [];
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly forward?: (event: KeyAuditEvent) => void,
  ) {}

  /** A key manager event: to the application's callback and the trail. */
  key(event: KeyAuditEvent): void {
    this.forward?.(event);
    this.record(event);
  }

  /** Any event (store-level ones: open, maintain, denied, ...). */
  record(event: AuditEvent): void {
    if (this.closed) return;
    if (!this.trail) {
      this.pending.push(event);
      return;
    }
    try {
      this.trail.record(event);
    } catch (err) {
      // A failed audit write must not turn a completed key operation into a reported failure.
      this.logger.error({ err: (err as { code?: unknown })?.code ?? 'VS_ERROR', action: event.action }, 'audit trail write failed');
    }
  }

  /** Starts writing to `trail`, first what was held. */
  attach(trail: AuditTrail): void {
    this.trail = trail;
    const held = this.pending;
    this.pending = [];
    for (const e of held) this.record(e);
  }

  /** Writes the trail's close checkpoint; later events are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    this.pending = [];
    await this.trail?.close();
  }
}
