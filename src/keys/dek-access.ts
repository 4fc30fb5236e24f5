import { timingSafeEqual } from 'node:crypto';
import {
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyPendingDeletionError,
  NotFoundError,
} from '../errors.js';
import type { DekContext } from './context.js';
import { DekCache, type DekCacheOptions, type DekLease } from './dek-cache.js';
import type { KeyAuditor } from './key-audit.js';
import type { CollectionKeys, DekRecord, KeyringData, StoredWrap } from './keyring-file.js';
import { toStored, toWrapped } from './keyring-mac-key.js';
import type { KekProvider, WrappedDek } from './provider.js';

/**
 * DEK access: making DEKs wrapped under a set of KEKs, unwrapping them (one
 * provider call, then the cache), and proving rewraps. Reads the keyring
 * state it is given; never writes it.
 */
export class DekAccess {
  private readonly cache: DekCache;
  private readonly inflight = new Map<string, Promise<DekLease>>();

  constructor(
    private readonly state: () => Readonly<KeyringData>,
    private readonly provider: (kek: string) => Promise<KekProvider>,
    private readonly audit: KeyAuditor,
    cache: DekCacheOptions | undefined,
  ) {
    this.cache = new DekCache(cache);
  }

  context(collectionId: string, dekVersion: number): DekContext {
    return { storeId: this.state().storeId, collectionId, dekVersion };
  }

  collectionKeys(collectionId: string): CollectionKeys {
    const s = this.state();
    const c = own(s.collections, collectionId) ?? own(s.system ?? {}, collectionId);
    if (!c) throw new NotFoundError(`no keys for collection ${collectionId}`);
    return c;
  }

  /** Throws the typed error that explains why a collection's keys cannot be used now, and nothing when they can. */
  assertUsable(collectionId: string): void {
    const col = this.collectionKeys(collectionId);
    if (col.disabled) throw new KeyDisabledError(`collection ${collectionId} is disabled`);
    if (col.tenant === undefined) return;
    const tenant = own(this.state().tenants, col.tenant);
    if (!tenant) return;
    switch (tenant.state) {
      case 'disabled':
        throw new KeyDisabledError(`tenant "${col.tenant}" is disabled`);
      case 'pending-deletion':
        throw new KeyPendingDeletionError(`tenant "${col.tenant}" is scheduled for deletion after ${tenant.deleteAfter}`);
      case 'deleted':
        throw new KeyDestroyedError(`tenant "${col.tenant}" was deleted and its keys destroyed`);
      default:
    }
  }

  /**
   * A lease on a DEK: from the cache when it can be, else one unwrap trying
   * the collection's KEKs in order. `usable: false` skips the state check, for
   * key management that must reach a disabled collection's keys (attaching a KEK).
   */
  async lease(collectionId: string, version: number, options: { usable?: false } = {}): Promise<DekLease> {
    if (options.usable !== false) this.assertUsable(collectionId);
    const id = cacheId(collectionId, version);
    const cached = this.cache.lease(id);
    if (cached) return cached;
    let pending = this.inflight.get(id);
    if (!pending) {
      pending = this.unwrap(collectionId, version).finally(() => this.inflight.delete(id));
      this.inflight.set(id, pending);
      return pending;
    }
    await pending.catch(() => undefined);
    return this.lease(collectionId, version, options);
  }

  isCached(collectionId: string, version: number): boolean {
    const lease = this.cache.lease(cacheId(collectionId, version));
    lease?.release();
    return lease !== undefined;
  }

  /** Caches a DEK just made (the plaintext is taken over and zeroed on eviction). */
  put(collectionId: string, version: number, plaintext: Uint8Array): void {
    this.cache.put(cacheId(collectionId, version), plaintext).release();
  }

  evict(collectionId?: string): void {
    this.cache.evict(collectionId);
  }

  /** A new DEK generated under the first of `keks` and wrapped under the rest. */
  async newDek(
    collectionId: string,
    version: number,
    keks: readonly string[],
    tenant?: string,
    now?: Date,
  ): Promise<{ record: DekRecord; plaintext: Uint8Array }> {
    const ctx = this.context(collectionId, version);
    const [first, ...rest] = keks;
    if (first === undefined) throw new InvalidArgumentError('a collection needs at least one KEK');
    const primary = await this.provider(first);
    const generated = await this.audit.audited(
      { action: 'generate', collectionId, kek: first, dekVersion: version, ...(tenant === undefined ? {} : { tenant }) },
      () => primary.generateDataKey(ctx),
    );
    const wraps = [toStored(first, generated.wrapped)];
    try {
      for (const name of rest) {
        const p = await this.provider(name);
        const w = await this.audit.audited({ action: 'wrap', collectionId, kek: name, dekVersion: version }, () =>
          p.wrap(generated.plaintext, ctx),
        );
        wraps.push(toStored(name, w));
      }
    } catch (err) {
      generated.plaintext.fill(0);
      throw err;
    }
    return { record: { version, state: 'active', createdAt: (now ?? new Date()).toISOString(), wraps }, plaintext: generated.plaintext };
  }

  /**
   * Rewraps one wrap under its KEK's current version and proves the new wrap
   * opens to the same DEK: in the provider (KMS ReEncrypt; checked against the
   * cached DEK when there is one) or here (unwrap, wrap, unwrap again).
   */
  async rewrap(provider: KekProvider, old: StoredWrap, ctx: DekContext): Promise<WrappedDek> {
    if (provider.rewrapsInside) {
      const fresh = await provider.rewrap(toWrapped(old), ctx);
      const check = await provider.unwrap(fresh, ctx);
      try {
        const cached = this.cache.lease(cacheId(ctx.collectionId, ctx.dekVersion));
        try {
          if (cached && !timingSafeEqual(cached.key, check)) throw rewrapMismatch(ctx);
        } finally {
          cached?.release();
        }
      } finally {
        check.fill(0);
      }
      return fresh;
    }
    const dek = await provider.unwrap(toWrapped(old), ctx);
    try {
      const fresh = await provider.wrap(dek, ctx);
      const check = await provider.unwrap(fresh, ctx);
      try {
        if (!timingSafeEqual(dek, check)) throw rewrapMismatch(ctx);
      } finally {
        check.fill(0);
      }
      return fresh;
    } finally {
      dek.fill(0);
    }
  }

  private async unwrap(collectionId: string, version: number): Promise<DekLease> {
    const col = this.collectionKeys(collectionId);
    const dek = col.deks.find((d) => d.version === version);
    if (!dek) throw new NotFoundError(`collection ${collectionId} has no DEK version ${version}`);
    if (dek.state === 'destroyed' || dek.wraps.length === 0)
      throw new KeyDestroyedError(`DEK version ${version} of collection ${collectionId} was destroyed`);
    if (col.minDecryptVersion !== undefined && version < col.minDecryptVersion) {
      throw new KeyDisabledError(
        `DEK version ${version} of collection ${collectionId} is below the minimum decryption version ${col.minDecryptVersion}`,
      );
    }
    const ctx = this.context(collectionId, version);
    const order = [...col.keks, ...dek.wraps.map((w) => w.kek)].filter((n, i, all) => all.indexOf(n) === i);
    let firstError: unknown;
    for (const name of order) {
      const wrap = dek.wraps.find((w) => w.kek === name);
      if (!wrap) continue;
      try {
        // Reaching the provider is inside the audited call: a KEK that cannot be
        // reached (or is not configured) is on record before the next is tried.
        const plaintext = await this.audit.audited(
          { action: 'unwrap', collectionId, kek: name, dekVersion: version, ...(col.tenant === undefined ? {} : { tenant: col.tenant }) },
          async () => (await this.provider(name)).unwrap(toWrapped(wrap), ctx),
        );
        return this.cache.put(cacheId(collectionId, version), plaintext);
      } catch (err) {
        firstError ??= err;
      }
    }
    throw firstError ?? new KeyDestroyedError(`DEK version ${version} of collection ${collectionId} has no usable wrap`);
  }
}

function cacheId(collectionId: string, version: number): string {
  return `${collectionId}/${version}`;
}

function rewrapMismatch(ctx: DekContext): CorruptDataError {
  return new CorruptDataError(`rewrapped DEK version ${ctx.dekVersion} of collection ${ctx.collectionId} does not match the original`, {
    reason: 'rewrap',
  });
}

/** An own entry of a map (never an inherited one such as `__proto__` or `constructor`). */
export function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
}
