import { createHmac, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { CorruptDataError, NotFoundError, UnsupportedVersionError } from '../errors.js';
import { openDurable, storageError, writeFileAtomic } from '../util/durable.js';
import { crashPoint } from '../util/crash.js';
import { isId } from '../util/ids.js';
import {
  KEYRING_FORMAT,
  KEYRING_VERSION,
  type CollectionKeys,
  type KekEntry,
  type KeyringData,
  type StoredWrap,
  type TenantEntry,
} from './keyring-file.js';
import { isKeyringV1 } from './keyring-v1.js';
import type { DurableFile } from '../util/file-layer.js';

/**
 * The keyring on disk: an append-only log of MAC-chained records, one JSON
 * line each. The first line is a checkpoint (the whole state); every later
 * line is one committed change, naming only the entries it replaces, so a
 * change costs O(1) in the number of collections. When the records since the
 * checkpoint outweigh it, a new checkpoint replaces the file atomically.
 *
 * Line: `{"m":"<hex>",` + the rest of the record's compact JSON. The MAC is
 * HMAC-SHA-256 under the keyring MAC key of a label, the previous line's MAC
 * (zeros for the checkpoint) and the record's JSON without the "m" member,
 * so every line is checked on the bytes as read, and no record can be edited,
 * dropped from the middle, reordered or moved from another keyring.
 *
 * After a crash the last line may be torn (no final newline): it is dropped,
 * and the next append truncates it away. Damage anywhere else is a
 * CorruptDataError naming the file. A log cut back at a line boundary is an
 * older keyring, which only a record of the head kept elsewhere can tell
 * (see {@link KeyringLog.head}).
 */

export const KEYRING_FILE = 'KEYRING';

const MAC_PREFIX = /^\{"m":"([0-9a-f]{64})",/;
const LABEL = Buffer.from('vectorseal/keyring-log/v2\n', 'utf8');
const ZERO = Buffer.alloc(32);
/** A checkpoint is rewritten once the records after it outweigh it (and at least this much). */
const MIN_CHECKPOINT_SLACK = 64 * 1024;

/** One replaced entry of the state; a missing `v` deletes it. */
export type KeyringOp =
  | { k: 'c' | 's'; id: string; v?: CollectionKeys }
  | { k: 't'; id: string; v?: TenantEntry }
  | { k: 'k'; id: string; v?: KekEntry }
  | { k: 'r'; v: RootFields };

/** The store-wide fields of the state, replaced together. */
export interface RootFields {
  defaultKeks: string[];
  policy?: KeyringData['policy'];
  rotation?: KeyringData['rotation'];
}

/** What can be read of a keyring file before its MAC key is known: nothing in it is believed yet. */
export interface UnverifiedKeyring {
  file: string;
  /** The store id the checkpoint claims (the MAC key's wrap is bound to it). */
  storeId: string;
  /** The MAC key's wraps as the checkpoint claims them. */
  macKey: StoredWrap[];
  lines: Buffer[];
  /** Bytes of the file up to the last complete line. */
  validLength: number;
  /** Bytes of a torn last line, dropped. */
  tornBytes: number;
}

export interface LogHead {
  seq: number;
  mac: Buffer;
}

/** Reads a keyring file and splits it into lines; the checkpoint's claims are parsed, not believed. */
export async function readKeyringFile(file: string): Promise<UnverifiedKeyring> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`no keyring at ${file}`, { cause: err });
    throw err;
  }
  return splitKeyring(bytes, file);
}

/** Splits keyring bytes into complete lines and parses the checkpoint's claims. */
export function splitKeyring(bytes: Buffer, file: string): UnverifiedKeyring {
  if (isKeyringV1(bytes)) {
    throw new UnsupportedVersionError(
      `the keyring was written by vectorseal 0.1.0 (file ${file}); ` +
        `convert the store with \`vectorseal upgrade --dir <dir>\` (or upgradeStore()) ` +
        'using its KEK configuration',
    );
  }
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nl = bytes.indexOf(0x0a, start);
    if (nl < 0) break;
    lines.push(bytes.subarray(start, nl));
    start = nl + 1;
  }
  const tornBytes = bytes.length - start;
  if (lines.length === 0)
    throw new CorruptDataError(bytes.length === 0 ? 'keyring is empty' : 'keyring has no complete checkpoint', {
      file,
      reason: 'truncated',
    });
  const first = (lines[0] as Buffer).toString('utf8');
  const match = MAC_PREFIX.exec(first);
  let claims: { t?: unknown; state?: { format?: unknown; version?: unknown; storeId?: unknown; macKey?: unknown } };
  try {
    if (!match) throw new Error('no MAC');
    claims = JSON.parse(`{${first.slice(match[0].length)}`) as typeof claims;
  } catch (err) {
    throw new CorruptDataError('not a vectorseal keyring', { file, reason: 'header', cause: err });
  }
  const state = claims?.state;
  if (claims?.t !== 'cp' || typeof state !== 'object' || state === null || state.format !== KEYRING_FORMAT) {
    throw new CorruptDataError('keyring does not start with a checkpoint', { file, reason: 'header' });
  }
  if (state.version !== KEYRING_VERSION) {
    throw new UnsupportedVersionError(
      `keyring format version ${String(state.version)} is not supported (this build reads ${KEYRING_VERSION}) (file ${file})`,
    );
  }
  if (!isId(state.storeId) || !Array.isArray(state.macKey))
    throw new CorruptDataError('keyring checkpoint is missing required fields', { file, reason: 'schema' });
  return { file, storeId: state.storeId, macKey: state.macKey as StoredWrap[], lines, validLength: start, tornBytes };
}

/**
 * Verifies every line's MAC in order and replays the records onto the
 * checkpoint. Any failure is a CorruptDataError naming the keyring file.
 */
export function verifyKeyring(
  u: UnverifiedKeyring,
  macKey: Uint8Array,
): { state: KeyringData; head: LogHead; checkpointBytes: number; tailBytes: number } {
  let prev: Buffer = ZERO;
  let state: KeyringData | undefined;
  let seq = 0;
  let tailBytes = 0;
  for (const [i, line] of u.lines.entries()) {
    const text = line.toString('utf8');
    const match = MAC_PREFIX.exec(text);
    if (!match) throw new CorruptDataError(`keyring record ${i + 1} has no MAC`, { file: u.file, reason: 'mac' });
    const body = `{${text.slice(match[0].length)}`;
    const mac = macOf(macKey, prev, body);
    if (!timingSafeEqual(mac, Buffer.from(match[1] as string, 'hex'))) {
      throw new CorruptDataError(`keyring record ${i + 1} fails to authenticate (edited, reordered or from another keyring)`, {
        file: u.file,
        reason: 'mac',
      });
    }
    let rec: { t: string; seq: number; at?: string; state?: KeyringData; ops?: KeyringOp[] };
    try {
      rec = JSON.parse(body) as typeof rec;
    } catch (err) {
      throw new CorruptDataError(`keyring record ${i + 1} is not valid JSON`, { file: u.file, reason: 'parse', cause: err });
    }
    if (i === 0) {
      if (rec.t !== 'cp' || typeof rec.state !== 'object' || rec.state === null || !Number.isSafeInteger(rec.seq)) {
        throw new CorruptDataError('keyring does not start with a checkpoint', { file: u.file, reason: 'header' });
      }
      state = rec.state;
      state.system ??= {};
    } else {
      if (rec.t !== 'tx' || rec.seq !== seq + 1 || !Array.isArray(rec.ops)) {
        throw new CorruptDataError(`keyring record ${i + 1} is out of sequence`, { file: u.file, reason: 'sequence' });
      }
      applyOps(state as KeyringData, rec.ops, u.file);
      if (typeof rec.at === 'string') (state as KeyringData).updatedAt = rec.at;
      tailBytes += line.length + 1;
    }
    seq = rec.seq;
    prev = mac;
  }
  const final = state as KeyringData;
  if (final.storeId !== u.storeId) throw new CorruptDataError('keyring checkpoint is inconsistent', { file: u.file, reason: 'schema' });
  final.generation = seq;
  return { state: final, head: { seq, mac: prev }, checkpointBytes: (u.lines[0] as Buffer).length + 1, tailBytes };
}

/** Applies committed changes to a state in place (entries are replaced, never merged). */
export function applyOps(state: KeyringData, ops: readonly KeyringOp[], file?: string): void {
  for (const op of ops) {
    if (op.k === 'r') {
      state.defaultKeks = op.v.defaultKeks;
      setOrDelete(state as unknown as Record<string, unknown>, 'policy', op.v.policy);
      setOrDelete(state as unknown as Record<string, unknown>, 'rotation', op.v.rotation);
      continue;
    }
    // Ids are our own (checked when made); anything else here is not a record this code wrote.
    if (typeof op.id !== 'string' || op.id === '__proto__' || op.id.length === 0 || op.id.length > 160) {
      throw new CorruptDataError('keyring record names an invalid entry', { ...(file === undefined ? {} : { file }), reason: 'schema' });
    }
    const map = (
      op.k === 'c'
        ? state.collections
        : op.k === 's'
          ? (state.system ??= {})
          : op.k === 't'
            ? state.tenants
            : op.k === 'k'
              ? state.keks
              : undefined
    ) as Record<string, unknown> | undefined;
    if (!map)
      throw new CorruptDataError('keyring record has an unknown kind', { ...(file === undefined ? {} : { file }), reason: 'schema' });
    setOrDelete(map, op.id, op.v);
  }
}

function setOrDelete(o: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined) delete o[key];
  else o[key] = value;
}

function macOf(key: Uint8Array, prev: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(LABEL).update(prev).update(body, 'utf8').digest();
}

function line(key: Uint8Array, prev: Buffer, record: object): { bytes: Buffer; mac: Buffer } {
  // Encoded once and MACed as bytes (the same bytes verifyKeyring MACs): a checkpoint of 10,000 collections is 4 MB.
  const body = Buffer.from(JSON.stringify(record), 'utf8');
  const mac = createHmac('sha256', key).update(LABEL).update(prev).update(body).digest();
  const head = Buffer.from(`{"m":"${mac.toString('hex')}",`, 'latin1');
  // `{"m":"<hex>",` + the body without its opening brace + a newline.
  const bytes = Buffer.allocUnsafe(head.length + body.length);
  head.copy(bytes, 0);
  body.copy(bytes, head.length, 1);
  bytes[bytes.length - 1] = 0x0a;
  return { bytes, mac };
}

/** A keyring file holding one checkpoint of `state` (for a new store, a compaction, or a backup's copy). */
export function encodeCheckpoint(state: KeyringData, macKey: Uint8Array, seq: number): { bytes: Buffer; mac: Buffer } {
  const { generation: _g, ...rest } = state;
  return line(macKey, ZERO, { t: 'cp', seq, state: rest });
}

export interface KeyringLogOptions {
  file: string;
  macKey: Uint8Array;
  head: LogHead;
  checkpointBytes: number;
  tailBytes: number;
  /** Bytes of the file up to the end of the last complete record. */
  length: number;
  /** Bytes of a torn last line still in the file, cut off before the next append. */
  tornAt?: number;
  /** 'batch': every append is fsynced before it resolves; 'none': left to the OS. */
  durability?: 'batch' | 'none';
}

/** Appends MAC-chained records to a keyring file, and checkpoints it. One writer (the store's LOCK). */
export class KeyringLog {
  private handle: DurableFile | undefined;
  private head: LogHead;
  private checkpointBytes: number;
  private tailBytes: number;
  private tornAt: number | undefined;
  private length: number;
  private readonly macKey: Buffer;

  constructor(private readonly options: KeyringLogOptions) {
    this.macKey = Buffer.from(options.macKey);
    this.head = options.head;
    this.checkpointBytes = options.checkpointBytes;
    this.tailBytes = options.tailBytes;
    this.tornAt = options.tornAt;
    this.length = options.length;
  }

  /** Writes a new keyring file holding only a checkpoint. */
  static async create(file: string, state: KeyringData, macKey: Uint8Array, durability: 'batch' | 'none' = 'batch'): Promise<KeyringLog> {
    const seq = state.generation;
    const { bytes, mac } = encodeCheckpoint(state, macKey, seq);
    await writeFileAtomic(file, bytes);
    return new KeyringLog({
      file,
      macKey,
      head: { seq, mac },
      checkpointBytes: bytes.length,
      tailBytes: 0,
      length: bytes.length,
      durability,
    });
  }

  /** The last record's sequence number and MAC: a store state kept elsewhere can pin the keyring to it. */
  get current(): LogHead {
    return { seq: this.head.seq, mac: Buffer.from(this.head.mac) };
  }

  /** Whether the records since the checkpoint outweigh it, so that a new one should be written. */
  get checkpointDue(): boolean {
    return this.tailBytes > Math.max(MIN_CHECKPOINT_SLACK, this.checkpointBytes);
  }

  /** Appends one committed change and returns its sequence number. */
  async append(ops: readonly KeyringOp[], at: string): Promise<number> {
    const seq = this.head.seq + 1;
    const { bytes, mac } = line(this.macKey, this.head.mac, { t: 'tx', seq, at, ops });
    try {
      this.handle ??= await openDurable(this.options.file, 'append');
      if (this.tornAt !== undefined) {
        await this.handle.truncate(this.tornAt);
        this.tornAt = undefined;
      }
      await this.handle.write(bytes);
      crashPoint('keyring:appended');
      if (this.options.durability !== 'none') await this.handle.fdatasync();
    } catch (err) {
      // A failed write may have left part of a line: the file must not be appended to again before it is cut back.
      await this.handle?.close().catch(() => undefined);
      this.handle = undefined;
      this.tornAt = this.length;
      throw storageError(err, this.options.file);
    }
    this.head = { seq, mac };
    this.length += bytes.length;
    this.tailBytes += bytes.length;
    return seq;
  }

  /** Replaces the file with one checkpoint of `state` (atomically), continuing the sequence. */
  async checkpoint(state: KeyringData): Promise<number> {
    const seq = this.head.seq + 1;
    const { bytes, mac } = encodeCheckpoint(state, this.macKey, seq);
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await writeFileAtomic(this.options.file, bytes);
    this.tornAt = undefined;
    this.length = bytes.length;
    this.head = { seq, mac };
    this.checkpointBytes = bytes.length;
    this.tailBytes = 0;
    return seq;
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    this.macKey.fill(0);
  }
}
