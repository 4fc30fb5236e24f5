import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { kmsErrors, KmsException } from './errors.js';
import { cloneState } from './file-key-store.js';
import { emptyState, KeyStore, type KeyStoreState } from './key-store.js';
import type { RootKeyProtector } from './root-key.js';
import { SerialQueue } from '../util/serial-queue.js';

/** Where the key service keeps its state in etcd. */
export interface EtcdStoreOptions {
  /** Client URLs of the cluster's members, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Key prefix; several services (or regions) can share one cluster under different prefixes. Default `vectorseal/kms/`. */
  prefix?: string;
  /**
   * The longest a node serves from its snapshot without confirming, by a
   * quorum read, that no change is missing from it. A change made through one
   * node is enforced by every other within this bound. Default 1000 ms.
   */
  maxStalenessMs?: number;
  /** Deadline of one etcd call. Default 2000 ms. */
  callTimeoutMs?: number;
}

type MapName = 'keys' | 'aliases' | 'grants' | 'principals';
const TAGS: Record<MapName, string> = { keys: 'k/', aliases: 'a/', grants: 'g/', principals: 'p/' };
const MAX_CONFLICT_RETRIES = 32;

/**
 * The key service's state in an etcd cluster, one etcd key per record (key,
 * alias, grant, access key) plus a revision key every change writes.
 *
 * - Every value is sealed by the root key with its etcd key as associated
 *   data: etcd never sees a secret, and a record edited, moved to another
 *   name, or written by someone without the root key fails to open.
 * - `mutate` is one transaction that compares the revision key's
 *   mod_revision with the one this node's snapshot came from, so two nodes'
 *   concurrent changes never overwrite each other: the loser reloads and
 *   reapplies its change to the newer state.
 * - A watch on the prefix applies other nodes' changes as they commit; a
 *   quorum read every `maxStalenessMs / 4` checks that nothing was missed,
 *   and a node that cannot confirm that within `maxStalenessMs` refuses
 *   requests with DependencyTimeoutException rather than serve stale policy.
 */
export class EtcdKeyStore extends KeyStore {
  private state: KeyStoreState = emptyState();
  /** The etcd revision the snapshot reflects. */
  private applied = 0;
  /** mod_revision of the revision key in the snapshot (0 = never written). */
  private revMod = 0;
  private freshAt = 0;
  private readonly queue = new SerialQueue();
  private watchQueue: Promise<void> = Promise.resolve();
  private watcher: Watcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private behindSince: number | undefined;
  private closed = false;
  private catchingUp: Promise<void> | undefined;
  private readonly prefix: string;
  private readonly revKey: string;
  private readonly maxStaleness: number;

  private constructor(
    private readonly client: Etcd3,
    protector: RootKeyProtector,
    options: EtcdStoreOptions,
  ) {
    super(protector);
    this.prefix = options.prefix ?? 'vectorseal/kms/';
    this.revKey = `${this.prefix}rev`;
    this.maxStaleness = options.maxStalenessMs ?? 1000;
  }

  /** Connects, loads the whole state at one revision, and starts the watch. */
  static async open(options: EtcdStoreOptions, protector: RootKeyProtector): Promise<EtcdKeyStore> {
    const timeout = options.callTimeoutMs ?? 2000;
    const client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    const store = new EtcdKeyStore(client, protector, options);
    try {
      await store.reload();
      await store.startWatch();
    } catch (err) {
      await store.close();
      throw unavailable(err);
    }
    store.poller = setInterval(() => void store.poll(), Math.max(50, Math.floor(store.maxStaleness / 4)));
    store.poller.unref();
    return store;
  }

  get snapshot(): Readonly<KeyStoreState> {
    return this.state;
  }

  override assertFresh(): void {
    if (Date.now() - this.freshAt > this.maxStaleness) {
      throw kmsErrors.dependencyTimeout('The key store cannot confirm it is current (etcd unavailable); retry the request');
    }
  }

  override catchUp(): Promise<void> {
    // Concurrent requests for missing names share one quorum read.
    this.catchingUp ??= this.confirmCurrent().finally(() => {
      this.catchingUp = undefined;
    });
    return this.catchingUp;
  }

  mutate<T>(change: (draft: KeyStoreState) => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
        this.assertFresh();
        const base = this.state;
        const baseRevMod = this.revMod;
        const draft = cloneState(base);
        const result = await change(draft);
        const ops = await this.diff(base, draft);
        if (ops.length === 0) return result;
        const txn =
          baseRevMod === 0 ? this.client.if(this.revKey, 'Version', '==', 0) : this.client.if(this.revKey, 'Mod', '==', baseRevMod);
        let committed: { succeeded: boolean; header: { revision: string } };
        try {
          committed = await txn
            .then(
              ...ops.map((op) => (op.value === undefined ? this.client.delete().key(op.key) : this.client.put(op.key).value(op.value))),
              this.client.put(this.revKey).value(String(Date.now())),
            )
            .commit();
        } catch (err) {
          throw unavailable(err);
        }
        if (committed.succeeded) {
          const revision = Number(committed.header.revision);
          // Nothing else under the prefix committed between the snapshot and this transaction.
          if (revision > this.applied) {
            this.state = draft;
            this.applied = revision;
            this.revMod = revision;
            this.published();
          }
          return result;
        }
        // Another node changed the state first: start again from the newest state.
        try {
          await this.reload();
        } catch (err) {
          throw unavailable(err);
        }
      }
      throw kmsErrors.dependencyTimeout('The key store is too contended to apply the change; retry the request');
    };
    return this.queue.run(run);
  }

  override async close(): Promise<void> {
    this.closed = true;
    if (this.poller !== undefined) clearInterval(this.poller);
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
    await super.close();
  }

  // ---- loading and following ----------------------------------------------

  /** Replaces the snapshot with the whole prefix read at one revision (a quorum read). */
  private async reload(): Promise<void> {
    const sentAt = Date.now();
    const res = await this.client.getAll().prefix(this.prefix).exec();
    const revision = Number(res.header.revision);
    const next = emptyState();
    let revMod = 0;
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (key === this.revKey) {
        revMod = Number(kv.mod_revision);
        continue;
      }
      const place = this.place(key);
      if (place === undefined) continue;
      (next[place.map] as Record<string, unknown>)[place.id] = await this.unseal(key, kv.value);
    }
    if (revision < this.applied) return;
    this.state = next;
    this.applied = revision;
    this.revMod = revMod;
    this.freshAt = sentAt;
    this.behindSince = undefined;
    this.published();
  }

  private async startWatch(): Promise<void> {
    this.watcher = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.applied + 1))
      .create();
    this.watcher.on('data', (res) => {
      const events = res.events.map((e) => ({ type: e.type, kv: e.kv }));
      this.watchQueue = this.watchQueue
        .then(() => this.applyEvents(events))
        .catch(() => {
          // A record that fails to open is left to the next poll's reload, which reports it.
          this.behindSince ??= Date.now();
        });
    });
    // Reconnects are the client's job; errors only mean the poll must catch up.
    this.watcher.on('error', () => undefined);
  }

  private async applyEvents(events: { type: string; kv: IKeyValue }[]): Promise<void> {
    const opened: { map: MapName; id: string; value: unknown; mod: number }[] = [];
    let revMod = 0;
    for (const { type, kv } of events) {
      const key = kv.key.toString('utf8');
      const mod = Number(kv.mod_revision);
      if (key === this.revKey) {
        revMod = Math.max(revMod, mod);
        continue;
      }
      const place = this.place(key);
      if (place === undefined) continue;
      opened.push({ ...place, value: type === 'Delete' ? undefined : await this.unseal(key, kv.value), mod });
    }
    const fresh = opened.filter((o) => o.mod > this.applied);
    if (fresh.length === 0 && revMod <= this.applied) return;
    const next = cloneShallow(this.state);
    for (const o of fresh) {
      const map = next[o.map] as Record<string, unknown>;
      if (o.value === undefined) delete map[o.id];
      else map[o.id] = o.value;
    }
    const top = Math.max(revMod, ...fresh.map((o) => o.mod));
    this.state = next;
    this.applied = Math.max(this.applied, top);
    this.revMod = Math.max(this.revMod, revMod);
    this.published();
  }

  /** A quorum read of the revision key; reloads at once when the snapshot is behind it. */
  private async confirmCurrent(): Promise<void> {
    const sentAt = Date.now();
    let latest: number;
    try {
      const res = await this.client.get(this.revKey).exec();
      latest = res.kvs[0] === undefined ? 0 : Number(res.kvs[0].mod_revision);
    } catch (err) {
      throw unavailable(err);
    }
    if (latest <= this.revMod) {
      this.freshAt = Math.max(this.freshAt, sentAt);
      return;
    }
    // The watch may deliver meanwhile; a reload at an older revision than applied is a no-op.
    await this.watchQueue;
    if (latest <= this.revMod) return;
    try {
      await this.reload();
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** The freshness check: a quorum read of the revision key. */
  private async poll(): Promise<void> {
    if (this.closed) return;
    const sentAt = Date.now();
    try {
      const res = await this.client.get(this.revKey).exec();
      const kv = res.kvs[0];
      const latest = kv === undefined ? 0 : Number(kv.mod_revision);
      if (latest <= this.revMod) {
        this.freshAt = sentAt;
        this.behindSince = undefined;
        return;
      }
      // Behind: normally the watch delivers within milliseconds; if it has not by the next poll, reload.
      if (this.behindSince !== undefined && sentAt - this.behindSince > this.maxStaleness / 4) await this.reload();
      else this.behindSince ??= sentAt;
    } catch {
      // Unreachable or no quorum: freshAt ages until requests are refused.
    }
  }

  // ---- records ------------------------------------------------------------

  private place(key: string): { map: MapName; id: string } | undefined {
    const rest = key.slice(this.prefix.length);
    for (const map of Object.keys(TAGS) as MapName[]) {
      if (rest.startsWith(TAGS[map])) return { map, id: rest.slice(TAGS[map].length) };
    }
    return undefined;
  }

  private async diff(base: Readonly<KeyStoreState>, draft: KeyStoreState): Promise<{ key: string; value?: Buffer }[]> {
    const ops: { key: string; value?: Buffer }[] = [];
    for (const map of Object.keys(TAGS) as MapName[]) {
      const before = base[map] as Record<string, unknown>;
      const after = draft[map] as Record<string, unknown>;
      for (const id of Object.keys(before)) {
        if (!Object.hasOwn(after, id)) ops.push({ key: `${this.prefix}${TAGS[map]}${id}` });
      }
      for (const [id, value] of Object.entries(after)) {
        if (Object.hasOwn(before, id) && JSON.stringify(before[id]) === JSON.stringify(value)) continue;
        const key = `${this.prefix}${TAGS[map]}${id}`;
        ops.push({ key, value: await this.seal(key, value) });
      }
    }
    return ops;
  }

  private async seal(key: string, value: unknown): Promise<Buffer> {
    return Buffer.from(await this.protector.wrap(Buffer.from(JSON.stringify(value), 'utf8'), recordAad(key)));
  }

  private async unseal(key: string, value: Buffer): Promise<unknown> {
    const plain = Buffer.from(await this.protector.unwrap(value, recordAad(key)));
    try {
      return JSON.parse(plain.toString('utf8'));
    } finally {
      plain.fill(0);
    }
  }
}

function recordAad(key: string): Buffer {
  return Buffer.from(`vectorseal/kms/etcd-record/v1\0${key}`, 'utf8');
}

function cloneShallow(state: Readonly<KeyStoreState>): KeyStoreState {
  const out = emptyState();
  for (const name of ['keys', 'aliases', 'grants', 'principals'] as const) Object.assign(out[name], state[name]);
  return out;
}

/** etcd faults reach clients as the KMS "dependency timeout", which SDKs retry. */
function unavailable(err: unknown): Error {
  if (err instanceof KmsException) return err;
  return kmsErrors.dependencyTimeout('The key store (etcd) is unavailable; retry the request');
}
