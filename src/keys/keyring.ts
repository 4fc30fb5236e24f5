import { join } from 'node:path';
import { CorruptDataError, UnsupportedOperationError } from '../errors.js';
import {
  KEYRING_FILE,
  KeyringLog,
  applyOps,
  encodeCheckpoint,
  readKeyringFile,
  verifyKeyring,
  type KeyringOp,
  type LogHead,
  type RootFields,
} from './keyring-log.js';
import { KEYRING_FORMAT, KEYRING_VERSION, type KeyringData } from './keyring-file.js';
import { unwrapMacKey } from './keyring-mac-key.js';
import type { KeyAuditor } from './key-audit.js';
import type { ProviderRegistry } from './provider-registry.js';

/**
 * One store's keyring: its authenticated state in memory and the log it is
 * committed to. Every change is a transaction of replaced entries
 * ({@link KeyringOp}), appended as one MAC-chained record, then applied here;
 * a checkpoint replaces the log when the records outweigh it.
 */
export class Keyring {
  private constructor(
    private readonly state: KeyringData,
    private readonly log: KeyringLog | undefined,
    private readonly macKey: Buffer,
    readonly file: string,
    /** The verified head of a store's own keyring opened read-only (a reader's), which its store state is checked against. */
    private readonly readHead?: LogHead,
  ) {}

  /** Writes a new keyring holding `state` (a fresh store, or a converted one). */
  static async create(dir: string, state: KeyringData, macKey: Uint8Array, durability: 'batch' | 'none' = 'batch'): Promise<Keyring> {
    const file = join(dir, KEYRING_FILE);
    const log = await KeyringLog.create(file, state, macKey, durability);
    state.generation = log.current.seq;
    return new Keyring(state, log, Buffer.from(macKey), file);
  }

  /**
   * Reads and verifies a keyring: the MAC key is unwrapped with a KEK the
   * caller configured, then every record is checked before any of it is
   * believed. `readOnly` opens it for reading only (a backup's copy);
   * `reader` opens a store's own keyring for reading (a torn tail a writer is
   * appending is left alone) and keeps its head for the store state check.
   */
  static async open(options: {
    dir: string;
    file?: string;
    registry: ProviderRegistry;
    durability?: 'batch' | 'none';
    readOnly?: boolean;
    reader?: boolean;
    expectStoreId?: string;
    audit?: KeyAuditor;
  }): Promise<Keyring> {
    const file = options.file ?? join(options.dir, KEYRING_FILE);
    const u = await readKeyringFile(file);
    if (options.expectStoreId !== undefined && u.storeId !== options.expectStoreId) {
      throw new CorruptDataError('keyring belongs to another store', { file, reason: 'foreign' });
    }
    const macKey = await unwrapMacKey(u.storeId, u.macKey, options.registry, file, options.audit);
    try {
      const { state, head, checkpointBytes, tailBytes } = verifyKeyring(u, macKey);
      const log =
        options.readOnly || options.reader
          ? undefined
          : new KeyringLog({
              file,
              macKey,
              head,
              checkpointBytes,
              tailBytes,
              length: u.validLength,
              ...(u.tornBytes > 0 ? { tornAt: u.validLength } : {}),
              ...(options.durability === undefined ? {} : { durability: options.durability }),
            });
      return new Keyring(state, log, macKey, file, options.reader ? head : undefined);
    } catch (err) {
      macKey.fill(0);
      throw err;
    }
  }

  /** The state (read-only: change it through {@link commit}). */
  get data(): Readonly<KeyringData> {
    return this.state;
  }

  /** The log's head, for a store state that pins the keyring; undefined when opened read-only. */
  get head(): LogHead | undefined {
    return this.log?.current ?? this.readHead;
  }

  /**
   * Commits a transaction: one record appended (fsynced), then applied to the
   * state. Entries in `ops` must be fresh objects the caller no longer changes.
   */
  async commit(ops: KeyringOp[]): Promise<void> {
    if (ops.length === 0) return;
    const log = this.writable();
    const at = new Date().toISOString();
    const seq = await log.append(ops, at);
    applyOps(this.state, ops);
    this.state.updatedAt = at;
    this.state.generation = seq;
    if (log.checkpointDue) await this.checkpoint();
  }

  /** Applies `ops` and writes them as a new checkpoint at once (changes that touch most entries, or the MAC key's wraps). */
  async commitAsCheckpoint(ops: KeyringOp[], macKeyWraps?: KeyringData['macKey']): Promise<void> {
    const log = this.writable();
    const next: KeyringData = {
      ...this.state,
      collections: { ...this.state.collections },
      system: { ...this.state.system },
      tenants: { ...this.state.tenants },
      keks: { ...this.state.keks },
    };
    applyOps(next, ops);
    if (macKeyWraps) next.macKey = macKeyWraps;
    next.updatedAt = new Date().toISOString();
    const seq = await log.checkpoint(next);
    // Fields the checkpoint dropped (a finished rotation's marker) must go from the state too.
    for (const k of Object.keys(this.state)) if (!(k in next)) delete (this.state as unknown as Record<string, unknown>)[k];
    Object.assign(this.state, next, { generation: seq });
  }

  /** The store-wide fields as they are now, for an 'r' op that changes some of them. */
  root(): RootFields {
    const s = this.state;
    return {
      defaultKeks: [...s.defaultKeks],
      ...(s.policy === undefined ? {} : { policy: { ...s.policy } }),
      ...(s.rotation === undefined ? {} : { rotation: { ...s.rotation } }),
    };
  }

  /** A keyring file holding one checkpoint of `state` under this keyring's MAC key (a backup's copy). */
  encode(state: KeyringData): Buffer {
    return encodeCheckpoint(state, this.macKey, state.generation).bytes;
  }

  /** Runs `fn` with the MAC key (to wrap it under another KEK). */
  async withMacKey<T>(fn: (key: Uint8Array) => Promise<T>): Promise<T> {
    return fn(this.macKey);
  }

  async close(): Promise<void> {
    await this.log?.close();
    this.macKey.fill(0);
  }

  private async checkpoint(): Promise<void> {
    const seq = await this.writable().checkpoint(this.state);
    this.state.generation = seq;
  }

  private writable(): KeyringLog {
    if (!this.log) throw new UnsupportedOperationError(`the keyring ${this.file} was opened read-only`);
    return this.log;
  }
}

/** An empty state for a new store. */
export function newKeyringState(storeId: string, defaultKeks: string[], keks: KeyringData['keks']): KeyringData {
  return {
    format: KEYRING_FORMAT,
    version: KEYRING_VERSION,
    storeId,
    generation: 1,
    updatedAt: new Date().toISOString(),
    defaultKeks,
    keks,
    tenants: {},
    collections: {},
    system: {},
    macKey: [],
  };
}
