import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { auditFilePath, parseEntry } from '../audit/index.js';
import { readTrailTail } from '../audit/tail.js';
import { CorruptDataError, InvalidArgumentError, ReadOnlyError, RollbackError } from '../errors.js';
import type { KeyManager } from '../keys/key-manager.js';
import { MANIFEST_FILE } from '../storage/manifest.js';
import { SEGMENT_HEADER_SIZE, decodeSegmentHeader } from '../storage/segment.js';
import {
  STATE_FILE,
  STATE_FORMAT,
  STATE_VERSION,
  deriveStateMacKey,
  parseStateFile,
  readAnchorFile,
  readStateFile,
  sha256Hex,
  writeAnchorFile,
  writeStateFile,
  type CollectionState,
  type ManifestRef,
  type StateAuditHead,
  type StateBody,
  type WalSeal,
} from '../storage/state-file.js';
import { listWalFiles, walFileName, walFileSeal } from '../storage/wal.js';
import { CATALOG_FILE, encodeCatalog, readCatalog, type CollectionInfo } from './catalog.js';
import { writeFileAtomic } from '../util/durable.js';

export { STATE_FILE, type CollectionState, type WalSeal } from '../storage/state-file.js';

/** The system key (KeyManager.systemKey) whose derived key MACs STATE and the freshness anchor. */
export const STATE_SYSTEM_KEY = 'state';

/**
 * The store's authenticated state (STATE): per collection the manifest
 * generation and hash and the WAL chain (superseded files sealed with record
 * count and hash; after a clean close the newest file too), the hashes of
 * CATALOG and STORE, and the audit trail's head. Whatever a partial rollback
 * could exploit is checked against it when the store opens.
 *
 * Crash safety comes from the order of writes: a file that will replace a
 * covered one (a manifest, CATALOG) is named in STATE as "pending" before
 * it is renamed into place, and a WAL file is named (liveSeq) before it is
 * created, so after a crash at any point the files on disk match either
 * what STATE records or what it announced.
 *
 * Not detectable without a freshness anchor: a rollback of the whole
 * directory (STATE included) to an older complete copy. Not detectable at
 * all: the tail of the newest WAL file (and audit entries) written after the
 * last STATE write of a store that then crashed.
 */
export class StoreState {
  private queued: Promise<void> | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /**
   * Supplies the audit trail's head at each write (set once the trail is
   * open), made durable first: a STATE that names a head the trail lost in
   * a power cut would make the store unopenable.
   */
  auditHead: (() => Promise<StateAuditHead | undefined>) | undefined;

  private constructor(
    readonly file: string,
    private body: StateBody,
    private readonly key: Buffer,
    private readonly anchor: string | undefined,
    private readonly keys: KeyManager,
    /** A reader's state: checked like the writer's, never written. */
    readonly readOnly = false,
  ) {}

  /**
   * Reads and authenticates STATE, checks STORE and CATALOG against it and,
   * with an anchor, that it is not older than the newest state the anchor
   * saw. Writes nothing.
   */
  static async open(options: {
    dir: string;
    keys: KeyManager;
    storeId: string;
    storeBytes: Uint8Array;
    anchor?: string;
    /** Called before a CATALOG that differs from the state is refused, to throw a more telling error (a removed entry, an older copy). */
    explainCatalog?: () => Promise<void>;
    /**
     * A reader's open: the STATE and CATALOG bytes it read itself (STATE
     * before the keyring, so the keyring is at least as new as the state
     * pins; null for a missing CATALOG), and a state that refuses writes.
     */
    snapshot?: { stateBytes: Buffer; catalogBytes: Buffer | null };
  }): Promise<StoreState> {
    const { dir, keys, storeId } = options;
    const file = join(dir, STATE_FILE);
    const key = await stateMacKey(keys);
    try {
      const snap = options.snapshot;
      const { body, mac } =
        snap === undefined ? await readStateFile(file, key, storeId) : parseStateFile(snap.stateBytes, file, key, storeId);
      if (sha256Hex(options.storeBytes) !== body.store) {
        throw new CorruptDataError('STORE differs from what the store state records', { file: join(dir, 'STORE'), reason: 'state' });
      }
      const anchor = options.anchor === undefined ? undefined : resolve(options.anchor);
      if (anchor !== undefined) await checkAnchor(anchor, key, storeId, body, mac, file);
      await checkCatalog(dir, body, options.explainCatalog, snap === undefined ? undefined : snap.catalogBytes);
      checkKeyringHead(keys, body, join(dir, 'KEYRING'));
      return new StoreState(file, body, key, snap === undefined ? anchor : undefined, keys, snap !== undefined);
    } catch (err) {
      key.fill(0);
      throw err;
    }
  }

  /** Writes the first STATE of a new store (before STORE, which marks the directory as a store). */
  static async create(options: {
    dir: string;
    keys: KeyManager;
    storeId: string;
    storeBytes: Uint8Array;
    anchor?: string;
  }): Promise<StoreState> {
    const key = await stateMacKey(options.keys);
    const body: StateBody = {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      storeId: options.storeId,
      generation: 0,
      clean: false,
      store: sha256Hex(options.storeBytes),
      catalog: null,
      collections: Object.create(null) as Record<string, CollectionState>,
    };
    const state = new StoreState(
      join(options.dir, STATE_FILE),
      body,
      key,
      options.anchor === undefined ? undefined : resolve(options.anchor),
      options.keys,
    );
    await state.commit();
    return state;
  }

  /** The body itself, for {@link initializeStoreState} to fill in before its first real write. */
  bodyForInit(): StateBody {
    return this.body;
  }

  get generation(): number {
    return this.body.generation;
  }

  /** The audit head STATE recorded (the trail must reach it). */
  get recordedAuditHead(): StateAuditHead | undefined {
    return this.body.audit;
  }

  /** The entry of a collection, made empty when missing (a collection being created). */
  entry(collectionId: string): CollectionState {
    return (this.body.collections[collectionId] ??= { sealed: [], liveSeq: 0 });
  }

  /** The entry of a collection, or undefined. */
  find(collectionId: string): CollectionState | undefined {
    return Object.hasOwn(this.body.collections, collectionId) ? this.body.collections[collectionId] : undefined;
  }

  /** Forgets a collection (dropped, shredded, an interrupted create undone); written with the next commit. */
  removeCollection(collectionId: string): void {
    delete this.body.collections[collectionId];
  }

  /**
   * Names a manifest about to be renamed into place, durably: called between
   * the manifest's temp file being fsynced and its rename.
   */
  async announceManifest(collectionId: string, ref: ManifestRef): Promise<void> {
    this.entry(collectionId).pending = { ...ref };
    await this.commit();
  }

  /** Names several manifests about to be renamed into place in one durable write (a batch of new collections). */
  async announceManifests(refs: readonly (readonly [string, ManifestRef])[]): Promise<void> {
    if (refs.length === 0) return;
    for (const [id, ref] of refs) this.entry(id).pending = { ...ref };
    await this.commit();
  }

  /** The announced manifest is in place: it becomes the committed one, and WAL seals it covers are dropped. */
  manifestCommitted(collectionId: string, ref: ManifestRef, firstWalSeq: number): void {
    const e = this.entry(collectionId);
    e.manifest = { ...ref };
    delete e.pending;
    e.sealed = e.sealed.filter((s) => s.seq >= firstWalSeq);
  }

  /**
   * Records the seals of superseded WAL files and names the next file, durably,
   * before that file is created.
   */
  async announceWal(collectionId: string, seq: number, seals: WalSeal[]): Promise<void> {
    const e = this.entry(collectionId);
    for (const s of seals) if (!e.sealed.some((x) => x.seq === s.seq)) e.sealed.push({ ...s });
    e.liveSeq = Math.max(e.liveSeq, seq);
    await this.commit();
  }

  /** Records a seal without writing (a file superseded while nothing is written after it). */
  noteSeal(collectionId: string, seal: WalSeal): void {
    const e = this.entry(collectionId);
    if (!e.sealed.some((x) => x.seq === seal.seq)) e.sealed.push({ ...seal });
  }

  /** Replaces CATALOG: announced in STATE first, then renamed into place. */
  async writeCatalog(dir: string, collections: CollectionInfo[]): Promise<void> {
    if (this.readOnly) throw new ReadOnlyError('the store was opened read-only: its catalog is never written');
    const bytes = encodeCatalog(collections);
    const hash = sha256Hex(bytes);
    this.body.pendingCatalog = hash;
    await this.commit();
    await writeFileAtomic(join(dir, CATALOG_FILE), bytes, 0o600);
    this.body.catalog = hash;
    delete this.body.pendingCatalog;
  }

  /**
   * Writes STATE (and the anchor). Calls that arrive while a write is queued
   * share it; a call never returns before a write that started after it.
   */
  commit(): Promise<void> {
    if (this.readOnly) return Promise.reject(new ReadOnlyError('the store was opened read-only: its state is never written'));
    if (this.closed) return Promise.reject(new InvalidArgumentError('store state is closed'));
    if (this.queued) return this.queued;
    const run = this.chain
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.writeNow(false);
      });
    this.queued = run;
    this.chain = run;
    return run;
  }

  /**
   * The last write of a clean close: the newest WAL file of every collection
   * (set by each collection's close) and the audit trail's final head are
   * covered, so the loss of any acknowledged write is detected on open.
   */
  async closeClean(auditHead: StateAuditHead | undefined): Promise<void> {
    if (this.readOnly) throw new ReadOnlyError('the store was opened read-only: its state is never written');
    await this.chain.catch(() => undefined);
    if (auditHead !== undefined) this.body.audit = { ...auditHead };
    try {
      await this.writeNow(true);
    } finally {
      this.dispose();
    }
  }

  /** Zeroes the key; later commits are refused. */
  dispose(): void {
    this.closed = true;
    this.key.fill(0);
  }

  private async writeNow(clean: boolean): Promise<void> {
    const head = await this.auditHead?.();
    if (head !== undefined && !clean) this.body.audit = { ...head };
    const ring = this.keys.keyringHead;
    if (ring !== undefined) this.body.keyring = { seq: ring.seq, mac: ring.mac.toString('hex') };
    const body: StateBody = { ...this.body, generation: this.body.generation + 1, clean };
    const mac = await writeStateFile(this.file, body, this.key);
    this.body.generation = body.generation;
    this.body.clean = clean;
    if (this.anchor !== undefined)
      await writeAnchorFile(this.anchor, { storeId: body.storeId, generation: body.generation, stateMac: mac }, this.key);
  }
}

/** The MAC key of STATE, from the keyring's 'state' system key (made on first use). The caller zeroes it. */
async function stateMacKey(keys: KeyManager): Promise<Buffer> {
  const lease = await keys.systemKey(STATE_SYSTEM_KEY);
  try {
    return deriveStateMacKey(lease.key);
  } finally {
    lease.release();
  }
}

/**
 * The keyring may be ahead of the state (a key change, then a crash before
 * the next state write), never behind it: an older authentic keyring (a cut
 * log, an older copy) would bring back wraps, states and KEKs it had dropped.
 */
function checkKeyringHead(keys: KeyManager, body: StateBody, keyringFile: string): void {
  const recorded = body.keyring;
  const head = keys.keyringHead;
  if (recorded === undefined || head === undefined) return;
  if (head.seq < recorded.seq || (head.seq === recorded.seq && head.mac.toString('hex') !== recorded.mac)) {
    throw new RollbackError(
      `the keyring (record ${head.seq}) is older than the store state records (record ${recorded.seq}): KEYRING was rolled back`,
      { file: keyringFile, reason: 'rollback' },
    );
  }
}

async function checkAnchor(anchor: string, key: Buffer, storeId: string, body: StateBody, mac: string, stateFile: string): Promise<void> {
  const a = await readAnchorFile(anchor, key);
  if (a === undefined) return;
  if (a.storeId !== storeId)
    throw new CorruptDataError('the freshness anchor belongs to another store', { file: anchor, reason: 'foreign' });
  if (a.generation > body.generation || (a.generation === body.generation && a.stateMac !== mac)) {
    throw new RollbackError(
      `the store state (generation ${body.generation}) is older than its freshness anchor ${anchor} ` +
        `(generation ${a.generation}): the data directory was rolled back`,
      { file: stateFile, reason: 'rollback' },
    );
  }
}

async function checkCatalog(
  dir: string,
  body: StateBody,
  explain: (() => Promise<void>) | undefined,
  given?: Buffer | null,
): Promise<void> {
  const file = join(dir, CATALOG_FILE);
  let bytes: Buffer | undefined = given ?? undefined;
  if (given === undefined) {
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (bytes === undefined) {
    if (body.catalog !== null) {
      await explain?.();
      throw new CorruptDataError('CATALOG is missing', { file, reason: 'missing' });
    }
    return;
  }
  const hash = sha256Hex(bytes);
  if (hash === body.catalog) {
    delete body.pendingCatalog;
    return;
  }
  if (hash === body.pendingCatalog) {
    body.catalog = hash;
    delete body.pendingCatalog;
    return;
  }
  await explain?.();
  throw new CorruptDataError('CATALOG differs from what the store state records (an older copy, or edited)', { file, reason: 'state' });
}

/**
 * Checks a collection's manifest file against its state entry and makes the
 * entry current (a pending manifest found in place is committed in memory).
 * Returns the WAL seals that files from `firstWalSeq` on must match.
 */
export async function checkManifestState(
  entry: CollectionState | undefined,
  manifestFile: string,
  stateFile: string,
  generation: number,
  firstWalSeq: number,
): Promise<Map<number, WalSeal>> {
  if (entry === undefined || (entry.manifest === undefined && entry.pending === undefined)) {
    throw new CorruptDataError(`the store state has no record of the collection whose manifest is ${manifestFile}`, {
      file: stateFile,
      reason: 'state',
    });
  }
  const sha = sha256Hex(await fs.readFile(manifestFile));
  const is = (r: ManifestRef | undefined): boolean => r !== undefined && r.generation === generation && r.sha256 === sha;
  if (entry.pending !== undefined && is(entry.pending)) {
    entry.manifest = entry.pending;
    delete entry.pending;
  } else if (is(entry.manifest)) {
    delete entry.pending;
  } else {
    const newest = Math.max(entry.manifest?.generation ?? -1, entry.pending?.generation ?? -1);
    if (generation < newest) {
      throw new RollbackError(`manifest generation ${generation} is older than the store state records (${newest})`, {
        file: manifestFile,
        reason: 'rollback',
      });
    }
    // A sealed manifest newer than anything the state announced can only meet an older copy of STATE.
    if (generation > newest) {
      throw new RollbackError(
        `the store state records manifest generation ${newest}, older than ${manifestFile} (${generation}): an older copy of STATE`,
        { file: stateFile, reason: 'rollback' },
      );
    }
    throw new CorruptDataError(`manifest generation ${generation} is not the one the store state records`, {
      file: manifestFile,
      reason: 'state',
    });
  }
  entry.sealed = entry.sealed.filter((s) => s.seq >= firstWalSeq);
  const seals = new Map<number, WalSeal>();
  for (const s of entry.sealed) seals.set(s.seq, s);
  if (entry.closed !== undefined && entry.closed.seq >= firstWalSeq) seals.set(entry.closed.seq, entry.closed);
  return seals;
}

/**
 * Builds and writes STATE from the files as they are, for a store whose
 * files are already trusted: a restore from a verified backup, or a store
 * made by vectorseal 0.1.0 being upgraded (`vectorseal upgrade` calls this
 * after verifying every wrap). Every WAL file present is sealed as it is;
 * the audit trail's last entry becomes the recorded head.
 */
export async function initializeStoreState(options: { dir: string; keys: KeyManager; storeId: string; anchor?: string }): Promise<void> {
  const dir = resolve(options.dir);
  const storeBytes = await fs.readFile(join(dir, 'STORE'));
  const state = await StoreState.create({
    dir,
    keys: options.keys,
    storeId: options.storeId,
    storeBytes,
    ...(options.anchor === undefined ? {} : { anchor: options.anchor }),
  });
  try {
    const body = state.bodyForInit();
    const catalogBytes = await fs.readFile(join(dir, CATALOG_FILE)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    body.catalog = catalogBytes === undefined ? null : sha256Hex(catalogBytes);
    for (const info of await readCatalog(dir)) {
      const colDir = join(dir, 'collections', info.id);
      const manifestFile = join(colDir, MANIFEST_FILE);
      const bytes = await fs.readFile(manifestFile).catch(() => undefined);
      if (bytes === undefined) continue;
      const generation = decodeSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_SIZE), manifestFile).segmentId;
      const e: CollectionState = { manifest: { generation, sha256: sha256Hex(bytes) }, sealed: [], liveSeq: 0 };
      for (const seq of await listWalFiles(join(colDir, 'wal'))) {
        e.sealed.push(await walFileSeal(join(colDir, 'wal', walFileName(seq)), seq));
        e.liveSeq = seq;
      }
      body.collections[info.id] = e;
    }
    const tail = await readTrailTail(auditFilePath(dir));
    if (tail.kind === 'line') {
      const entry = parseEntry(tail.text);
      if (typeof entry !== 'string') body.audit = { trail: entry.trail, seq: entry.seq, mac: entry.mac };
    }
    await state.closeClean(undefined);
  } finally {
    state.dispose();
  }
}

/**
 * STATE read and authenticated without taking the store's lock (for
 * `vectorseal audit verify`): the recorded audit head and whether the last
 * write was a clean close.
 */
export async function readStoreStateForAudit(options: {
  dir: string;
  keys: KeyManager;
}): Promise<{ audit: StateAuditHead | undefined; clean: boolean }> {
  const key = await stateMacKey(options.keys);
  try {
    const { body } = await readStateFile(join(resolve(options.dir), STATE_FILE), key, options.keys.storeId);
    return { audit: body.audit, clean: body.clean };
  } finally {
    key.fill(0);
  }
}
