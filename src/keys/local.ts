import { createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  NotFoundError,
  UnsupportedOperationError,
  WrongKeyError,
} from '../errors.js';
import { defaultGcm } from '../crypto/gcm.js';
import { createFileAtomic, fsyncDir, mkdirs, openDurable, removeFile, removeTree } from '../util/durable.js';
import { contextBytes, type DekContext } from './context.js';
import { DEK_BYTES, KekProvider, wrapAuthFailure, type GeneratedDek, type KekDescription, type WrappedDek } from './provider.js';
import { fileLayer } from '../util/file-layer.js';

/**
 * The embedded default KEK provider. The master key is 32 random bytes per KEK
 * version, each in its own file `<keyDir>/<keyId>/v<N>.key` (mode 0600, in a
 * 0700 directory) kept outside the data directory; or given in the environment
 * as `VECTORSEAL_MASTER_KEY` (base64 of 32 bytes, or `1:<b64>,2:<b64>` for
 * several versions).
 *
 * Wrapped DEK blob (81 bytes):
 *   format (1) = 1 || KEK version (u32) || key check value (16) || nonce (12)
 *   || AES-256-GCM(DEK) (32) || tag (16)
 * The AEAD's associated data is the DEK context (store, collection, DEK
 * version), so a wrap copied to another collection fails to authenticate. The
 * key check value (HMAC-SHA-256 of a fixed label under the KEK, truncated)
 * tells a wrong master key (WrongKeyError) from a damaged or moved wrap
 * (CorruptDataError).
 */

const BLOB_FORMAT = 1;
const KCV_SIZE = 16;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const BLOB_SIZE = 1 + 4 + KCV_SIZE + NONCE_SIZE + DEK_BYTES + TAG_SIZE;
const KCV_LABEL = Buffer.from('vectorseal/kek-check/v1', 'utf8');
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const MASTER_KEY_ENV = 'VECTORSEAL_MASTER_KEY';

export interface LocalKekOptions {
  /** The KEK's id (a directory name under keyDir). */
  keyId: string;
  /** Directory holding key directories. Required unless `masterKey` or the environment gives the key. */
  keyDir?: string;
  /**
   * Key versions given directly (for tests or an environment variable);
   * version number → 32 bytes. Such a provider cannot rotate.
   */
  masterKeys?: Map<number, Uint8Array>;
}

/** Parses `VECTORSEAL_MASTER_KEY`: base64 of 32 bytes, or `N:<b64>,M:<b64>`. */
export function parseMasterKeyEnv(value: string): Map<number, Uint8Array> {
  const keys = new Map<number, Uint8Array>();
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const colon = part.indexOf(':');
    const version = colon < 0 ? 1 : Number(part.slice(0, colon));
    const key = Buffer.from(colon < 0 ? part : part.slice(colon + 1), 'base64');
    if (!Number.isSafeInteger(version) || version < 1 || key.length !== 32) {
      throw new InvalidArgumentError(`${MASTER_KEY_ENV} expected base64 of 32 bytes (or "version:base64,..."), got an entry that is not`);
    }
    keys.set(version, key);
  }
  if (keys.size === 0) throw new InvalidArgumentError(`${MASTER_KEY_ENV} is empty`);
  return keys;
}

export class LocalKekProvider extends KekProvider {
  readonly name = 'local';
  readonly keyId: string;
  private readonly dir: string | undefined;
  private readonly fixed: Map<number, Uint8Array> | undefined;
  /** Loaded key versions; zeroed by close(). */
  private readonly keys = new Map<number, Buffer>();
  /** Key check values of loaded versions (not secret, but an HMAC each time adds up over many DEKs). */
  private readonly checks = new Map<number, Buffer>();
  /** The newest version, as last listed: wraps use it; a rotation or destruction here refreshes it. */
  private current: number | undefined;
  /** Nonces for new wraps, drawn from the CSPRNG in bulk (one call per 12 bytes cost more than the AES-GCM itself). */
  private readonly nonces = new RandomPool();

  constructor(options: LocalKekOptions) {
    super();
    if (typeof options.keyId !== 'string' || !KEY_ID.test(options.keyId)) {
      throw new InvalidArgumentError('"keyId" expected 1-64 characters [A-Za-z0-9._-]');
    }
    this.keyId = options.keyId;
    if (options.masterKeys) {
      this.fixed = new Map([...options.masterKeys].map(([v, k]) => [v, Buffer.from(k)]));
    } else if (options.keyDir) {
      this.dir = join(options.keyDir, options.keyId);
    } else {
      throw new InvalidArgumentError('the local KEK provider needs "keyDir" or "masterKeys"');
    }
  }

  /**
   * Creates the key directory and the first KEK version (32 random bytes,
   * mode 0600). Does nothing if a version exists already.
   */
  static async init(options: LocalKekOptions): Promise<LocalKekProvider> {
    const provider = new LocalKekProvider(options);
    if (provider.dir) {
      const first = await mkdirs(provider.dir, 0o700);
      await fileLayer().chmod(provider.dir, 0o700);
      // Every directory made here must survive a crash with the key in it: fsync each new entry's parent.
      if (first !== undefined) {
        for (let d = provider.dir; ; d = dirname(d)) {
          await fsyncDir(dirname(d));
          if (d === first || dirname(d) === d) break;
        }
      }
      if ((await provider.versions()).length === 0) await provider.createVersion(1);
    }
    return provider;
  }

  protected async _generateDataKey(ctx: DekContext): Promise<GeneratedDek> {
    const plaintext = randomBytes(DEK_BYTES);
    return { plaintext, wrapped: await this._wrap(plaintext, ctx) };
  }

  protected async _wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek> {
    const version = await this.currentVersion();
    const kek = await this.key(version);
    const blob = Buffer.alloc(BLOB_SIZE);
    blob.writeUInt8(BLOB_FORMAT, 0);
    blob.writeUInt32BE(version, 1);
    this.checkValueOf(version, kek).copy(blob, 5);
    const nonce = blob.subarray(5 + KCV_SIZE, 5 + KCV_SIZE + NONCE_SIZE);
    this.nonces.fill(nonce);
    // ciphertext (32) || tag (16), which is how the blob ends.
    const sealed = defaultGcm().seal(kek, nonce, contextBytes(ctx), dek);
    blob.set(sealed, 5 + KCV_SIZE + NONCE_SIZE);
    return { provider: this.name, keyId: this.keyId, kekVersion: String(version), blob };
  }

  protected async _unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array> {
    if (wrapped.keyId !== this.keyId) {
      throw new WrongKeyError(`DEK is wrapped under local KEK "${wrapped.keyId}", not "${this.keyId}"`);
    }
    const blob = Buffer.from(wrapped.blob);
    if (blob.length !== BLOB_SIZE || blob.readUInt8(0) !== BLOB_FORMAT) {
      throw new CorruptDataError('wrapped DEK has the wrong size or format', { reason: 'wrapped-dek' });
    }
    const version = blob.readUInt32BE(1);
    const kek = await this.key(version);
    if (!timingSafeEqual(this.checkValueOf(version, kek), blob.subarray(5, 5 + KCV_SIZE))) {
      throw new WrongKeyError(`local KEK "${this.keyId}" version ${version} is not the key this DEK was wrapped with (wrong master key)`);
    }
    const at = 5 + KCV_SIZE;
    // undefined when the tag does not verify (the primitive has zeroed what it decrypted).
    const dek = defaultGcm().open(kek, blob.subarray(at, at + NONCE_SIZE), contextBytes(ctx), blob.subarray(at + NONCE_SIZE));
    if (dek === undefined) throw wrapAuthFailure(new Error('AES-GCM tag mismatch'));
    return dek;
  }

  protected async _describe(): Promise<KekDescription> {
    const versions = await this.versions();
    const current = versions.at(-1);
    this.current = current;
    return {
      provider: this.name,
      keyId: this.keyId,
      state: current === undefined ? 'destroyed' : 'enabled',
      ...(current === undefined ? {} : { currentVersion: String(current) }),
      versions: versions.map(String),
      details: this.dir ? { keyDir: this.dir } : { source: 'environment' },
    };
  }

  protected async _rotate(): Promise<KekDescription> {
    if (!this.dir) throw new UnsupportedOperationError('a master key given in the environment cannot rotate; add a version there');
    const next = ((await this.versions()).at(-1) ?? 0) + 1;
    await this.createVersion(next);
    return this._describe();
  }

  /**
   * Destroys one KEK version (its key file is removed): every DEK still wrapped
   * only under it becomes unrecoverable. Used after rotation and for
   * crypto-shredding.
   */
  async destroyVersion(version: number): Promise<void> {
    if (!this.dir) throw new UnsupportedOperationError('a master key given in the environment cannot be destroyed here');
    const path = join(this.dir, `v${version}.key`);
    const cached = this.keys.get(version);
    cached?.fill(0);
    this.keys.delete(version);
    this.checks.delete(version);
    this.current = undefined;
    try {
      // Overwrite before unlinking; on copy-on-write or journaling file systems this is best effort.
      const handle = await openDurable(path, 'write');
      await handle.pwrite(randomBytes(32), 0);
      await handle.fsync();
      await handle.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await removeFile(path);
    await fsyncDir(this.dir);
  }

  protected override async _destroyOldVersions(current: string): Promise<string[]> {
    const keep = Number(current);
    const old = (await this.versions()).filter((v) => v < keep);
    for (const v of old) await this.destroyVersion(v);
    return old.map(String);
  }

  /** Destroys every version of this KEK and its directory. */
  protected override async _destroyKek(): Promise<'destroyed'> {
    if (!this.dir) throw new UnsupportedOperationError('a master key given in the environment cannot be destroyed here');
    for (const v of await this.versions()) await this.destroyVersion(v);
    await removeTree(this.dir);
    return 'destroyed';
  }

  override async close(): Promise<void> {
    for (const k of this.keys.values()) k.fill(0);
    this.keys.clear();
    this.checks.clear();
    this.current = undefined;
    if (this.fixed) for (const k of this.fixed.values()) k.fill(0);
  }

  /** Version numbers present, ascending. */
  async versions(): Promise<number[]> {
    if (this.fixed) return [...this.fixed.keys()].sort((a, b) => a - b);
    let names: string[];
    try {
      names = await fs.readdir(this.dir as string);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .map((n) => /^v(\d+)\.key$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private async currentVersion(): Promise<number> {
    this.current ??= (await this.versions()).at(-1);
    if (this.current === undefined) throw new NotFoundError(`local KEK "${this.keyId}" has no key versions`);
    return this.current;
  }

  private checkValueOf(version: number, kek: Buffer): Buffer {
    let kcv = this.checks.get(version);
    if (!kcv) {
      kcv = checkValue(kek);
      this.checks.set(version, kcv);
    }
    return kcv;
  }

  private async key(version: number): Promise<Buffer> {
    const cached = this.keys.get(version);
    if (cached) return cached;
    let key: Buffer;
    if (this.fixed) {
      const k = this.fixed.get(version);
      if (!k) throw new WrongKeyError(`local KEK "${this.keyId}" version ${version} is not among the master keys given`);
      key = Buffer.from(k);
    } else {
      try {
        key = await fs.readFile(join(this.dir as string, `v${version}.key`));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new KeyDestroyedError(`local KEK "${this.keyId}" version ${version} does not exist (destroyed, or another key directory)`, {
            cause: err,
          });
        }
        throw err;
      }
      if (key.length !== 32) {
        key.fill(0);
        throw new CorruptDataError(`local KEK "${this.keyId}" version ${version} is not 32 bytes`, { reason: 'key-file' });
      }
    }
    this.keys.set(version, key);
    return key;
  }

  private async createVersion(version: number): Promise<void> {
    this.current = undefined;
    const key = randomBytes(32);
    try {
      await createFileAtomic(join(this.dir as string, `v${version}.key`), key, 0o600);
    } finally {
      key.fill(0);
    }
  }
}

/**
 * Random bytes from the CSPRNG, fetched 4 KiB at a time and handed out once
 * each: every byte given out is fresh from randomFillSync and never given
 * out again (and is zeroed in the pool as it leaves).
 */
class RandomPool {
  private readonly pool = Buffer.alloc(4096);
  private at = this.pool.length;

  fill(out: Uint8Array): void {
    if (out.length > this.pool.length) throw new InvalidArgumentError('random pool request too large');
    if (this.at + out.length > this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const slice = this.pool.subarray(this.at, this.at + out.length);
    out.set(slice);
    slice.fill(0);
    this.at += out.length;
  }
}

function checkValue(kek: Buffer): Buffer {
  return createHmac('sha256', kek).update(KCV_LABEL).digest().subarray(0, KCV_SIZE);
}
