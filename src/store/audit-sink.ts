import type { AuditEvent, AuditHead, AuditTrail } from '../audit/index.js';
import { AuditWriteError } from '../errors.js';
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
    /** A reader's sink: it writes no file, so events go to the callback only and nothing is held for a trail. */
    private readonly trailless = false,
  ) {}

  /** A key manager event: to the application's callback and the trail. */
  key(event: KeyAuditEvent): void {
    this.forward?.(event);
    this.record(event);
  }

  /** Any event (store-level ones: open, maintain, denied, ...). */
  record(event: AuditEvent): void {
    if (this.closed || this.trailless) return;
    if (!this.trail) {
      this.pending.push(event);
      return;
    }
    try {
      this.trail.record(event);
    } catch (err) {
      // Not thrown here (record is synchronous, called deep inside key operations): the trail keeps the
      // failure, and the next `durable()` (which every lifecycle operation awaits before it returns) throws it.
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

  /** The trail's head (the last entry written), once there is one. */
  head(): AuditHead | undefined {
    try {
      return this.trail?.head();
    } catch {
      return undefined;
    }
  }

  /**
   * Makes the entries recorded so far durable (lifecycle operations call it
   * before they return). Throws AuditWriteError when an entry could not be
   * written or the fsync failed: the operation is then reported as failed,
   * not acknowledged with a record that may not survive.
   */
  async durable(): Promise<void> {
    try {
      await this.trail?.sync();
    } catch (err) {
      this.logger.error({ err: (err as { code?: unknown })?.code ?? 'VS_ERROR' }, 'audit trail sync failed');
      throw err instanceof AuditWriteError ? err : new AuditWriteError('audit trail entries could not be made durable', { cause: err });
    }
  }

  /** Writes the trail's close checkpoint and returns the final head; later events are dropped. */
  async close(): Promise<AuditHead | undefined> {
    this.closed = true;
    this.pending = [];
    return this.trail?.close();
  }
}
