import { KeyDestroyedError, KeyDisabledError, KeyPendingDeletionError, ReadOnlyError, UnsupportedOperationError } from '../errors.js';
import type { CollectionMemory } from './collection-memory.js';
import { reload } from './collection-recovery.js';

/*
 * The collection's key gate: every operation is admitted against the state
 * of its keys (disable, deletion) and, once the DEK's cache entry expired,
 * re-validated through the provider.
 */

/**
 * Gate of every asynchronous operation: the keys' state (disable, deletion:
 * a map lookup) and, once the DEK's cache entry has expired, one
 * re-validation through the provider, so that a KEK disabled there takes
 * effect within the cache TTL. With `keepLazy`, a collection opened lazily
 * and not loaded yet stays so.
 */
export async function admit(s: CollectionMemory, operation: string, options: { keepLazy?: boolean } = {}): Promise<void> {
  s.assertOpen();
  if (s.ctx.readOnly && operation !== 'backup') {
    const what = `collection "${s.info.name}" belongs to a store opened read-only (a snapshot)`;
    throw new ReadOnlyError(`${what}: ${operation} needs the writer`);
  }
  // A refusal by the provider is asked again before an asynchronous operation: it may have been lifted.
  if (s.keyFailure !== undefined) await revalidate(s).catch(() => undefined);
  authorize(s, operation);
  // A backup copies a lazily opened collection's files as they are (collection-cut.ts): nothing to load.
  if (!s.loaded && !(options.keepLazy && s.pendingLoad)) await reload(s);
  if (!s.ctx.keys.isDekCached(s.info.id, s.ctx.keys.activeDekVersion(s.info.id))) {
    await revalidate(s).catch(() => undefined);
    authorize(s, operation);
  }
}

/**
 * Gate of the synchronous reads (search, get): the same key-state check,
 * never a provider call. An expired DEK starts a re-validation in the
 * background; once it fails, every read is refused.
 */
export function admitSync(s: CollectionMemory, operation: string): void {
  s.assertOpen();
  authorize(s, operation);
  if (!s.loaded && s.pendingLoad) {
    throw new UnsupportedOperationError(
      `collection "${s.info.name}" is not loaded yet (the store was opened lazily): await collection.load() first`,
    );
  }
  if (!s.loaded) {
    const err = new KeyDisabledError(`collection "${s.info.name}" is not loaded; enable it through the store`);
    s.ctx.onDenied?.(s.info, operation, err);
    throw err;
  }
  if (!s.ctx.keys.isDekCached(s.info.id, s.ctx.keys.activeDekVersion(s.info.id))) {
    revalidate(s).catch(() => undefined);
  }
}

/** Throws (and reports as denied) when the collection's keys are refused. */
export function authorize(s: CollectionMemory, operation: string): void {
  try {
    s.ctx.keys.assertUsable(s.info.id);
    if (s.keyFailure !== undefined) {
      // Ask again in the background: a KEK enabled again in its provider restores access.
      revalidate(s).catch(() => undefined);
      throw s.keyFailure;
    }
  } catch (err) {
    s.ctx.onDenied?.(s.info, operation, err);
    throw err;
  }
}

/** Whether the collection's keys may be used now (no report when not). */
export function usable(s: CollectionMemory): boolean {
  try {
    s.ctx.keys.assertUsable(s.info.id);
    return s.keyFailure === undefined;
  } catch {
    return false;
  }
}

/** One provider round trip (shared by concurrent callers) that re-validates the active DEK. */
function revalidate(s: CollectionMemory): Promise<void> {
  s.revalidation ??= (async () => {
    try {
      const lease = await s.ctx.keys.leaseDek(s.info.id, s.ctx.keys.activeDekVersion(s.info.id));
      lease.release();
      s.keyFailure = undefined;
    } catch (err) {
      // A refusal by the provider sticks until a later re-validation succeeds; an outage is retried.
      if (isRefusal(err) || (err as { code?: unknown } | undefined)?.code === 'VS_ACCESS_DENIED') s.keyFailure = err;
      throw err;
    } finally {
      s.revalidation = undefined;
    }
  })();
  return s.revalidation;
}

/** Whether an error is the keyring refusing a collection's keys (disabled, pending deletion, destroyed). */
export function isRefusal(err: unknown): boolean {
  return err instanceof KeyDisabledError || err instanceof KeyPendingDeletionError || err instanceof KeyDestroyedError;
}
