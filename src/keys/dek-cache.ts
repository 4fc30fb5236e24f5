/**
 * Unwrapped DEKs, cached so that page operations never call a key provider.
 * Entries expire after a TTL or a number of uses; an evicted key is zeroed as
 * soon as no lease holds it.
 */

export interface DekCacheOptions {
  /** Milliseconds a key stays cached after it was unwrapped. Default 5 minutes. */
  ttlMs?: number;
  /** Leases after which the key is unwrapped again. Default unlimited. */
  maxUses?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface DekLease {
  readonly key: Uint8Array;
  release(): void;
}

interface Entry {
  key: Buffer;
  expiresAt: number;
  uses: number;
  leases: number;
  evicted: boolean;
}

export class DekCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxUses: number;
  private readonly now: () => number;

  constructor(options: DekCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.maxUses = options.maxUses ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
  }

  /** A lease on a cached key, or undefined when it must be unwrapped. */
  lease(id: string): DekLease | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now() || entry.uses >= this.maxUses) {
      this.evictEntry(id, entry);
      return undefined;
    }
    entry.uses += 1;
    return this.makeLease(entry);
  }

  /** Caches a freshly unwrapped key (the cache takes ownership) and leases it. */
  put(id: string, key: Uint8Array): DekLease {
    const old = this.entries.get(id);
    if (old) this.evictEntry(id, old);
    const entry: Entry = { key: Buffer.from(key), expiresAt: this.now() + this.ttlMs, uses: 1, leases: 0, evicted: false };
    key.fill(0);
    if (this.ttlMs > 0) this.entries.set(id, entry);
    else entry.evicted = true;
    return this.makeLease(entry);
  }

  /** Evicts one key, every key whose id starts with `prefix`, or all. */
  evict(prefix?: string): void {
    for (const [id, entry] of this.entries) {
      if (prefix === undefined || id === prefix || id.startsWith(`${prefix}/`)) this.evictEntry(id, entry);
    }
  }

  /** Drops expired entries. */
  sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) if (entry.expiresAt <= now) this.evictEntry(id, entry);
  }

  get size(): number {
    return this.entries.size;
  }

  private makeLease(entry: Entry): DekLease {
    entry.leases += 1;
    let released = false;
    return {
      key: entry.key,
      release: () => {
        if (released) return;
        released = true;
        entry.leases -= 1;
        if (entry.evicted && entry.leases === 0) entry.key.fill(0);
      },
    };
  }

  private evictEntry(id: string, entry: Entry): void {
    this.entries.delete(id);
    entry.evicted = true;
    if (entry.leases === 0) entry.key.fill(0);
  }
}
