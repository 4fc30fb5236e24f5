import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CorruptDataError, InvalidArgumentError, NotFoundError, UnsupportedVersionError, WrongKeyError } from '../errors.js';
import { mkdirDurable, writeFileAtomic } from '../util/durable.js';
import { fileLayer } from '../util/file-layer.js';

/**
 * Protects the key service's stored key material. Everything the service
 * writes that is secret (backing keys, import private keys) goes through
 * `wrap` first and comes back through `unwrap`; the protector is the only
 * thing that ever holds the root key.
 *
 * Contract for implementations (a local key file now, a PKCS#11 HSM later):
 * - `wrap` is authenticated encryption: `unwrap(wrap(p, aad), aad)` returns `p`,
 *   and any change to the blob or a different `aad` makes `unwrap` throw.
 * - `aad` is bound but not stored: the caller passes the same bytes again.
 * - The blob is opaque and self-describing enough for the implementation to
 *   reject blobs it did not make (throw `WrongKeyError`) or cannot parse
 *   (`UnsupportedVersionError`); tampering throws `CorruptDataError`.
 * - Implementations never log or put key bytes in error messages.
 */
export interface RootKeyProtector {
  wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  unwrap(blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

const FORMAT_V1 = 1;
const KEY_ID_BYTES = 8;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ROOT_KEY_BYTES = 32;

/**
 * A root key kept in a local file of 32 random bytes (mode 0600), created on
 * first use. Blobs: version byte, 8-byte root key fingerprint, 12-byte IV,
 * AES-256-GCM ciphertext and tag; the header is part of the associated data.
 */
export class LocalRootKeyFile implements RootKeyProtector {
  private constructor(
    private readonly key: Buffer,
    private readonly fingerprint: Buffer,
  ) {}

  /**
   * Opens the root key file, creating it (and its directory) when missing —
   * unless `create` is false: then a missing file is NotFoundError, so a
   * service pointed at the wrong path refuses to start instead of sealing
   * nothing under a fresh key and failing every request.
   */
  static async open(file: string, options: { create?: boolean } = {}): Promise<LocalRootKeyFile> {
    let key: Buffer;
    try {
      key = await readFile(file);
      const st = await stat(file);
      // A root key readable by others is a configuration fault worth refusing, not repairing silently.
      if ((st.mode & 0o077) !== 0) {
        throw new InvalidArgumentError(`root key file ${file} must not be accessible to group or others (chmod 600)`);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (options.create === false)
        throw new NotFoundError(`root key file ${file} does not exist (wrong path? --create-root makes a new one)`);
      // The directory must survive a crash with the key in it, like the key itself.
      await mkdirDurable(dirname(file), 0o700);
      key = randomBytes(ROOT_KEY_BYTES);
      await writeFileAtomic(file, key, 0o600);
      await fileLayer().chmod(file, 0o600);
    }
    if (key.length !== ROOT_KEY_BYTES) {
      throw new InvalidArgumentError(`root key file ${file} expected ${ROOT_KEY_BYTES} bytes, got length=${key.length}`);
    }
    // The fingerprint lets unwrap tell "another root key" from "tampered blob".
    const fingerprint = createHash('sha256').update('vectorseal/kms/root-key-id').update(key).digest().subarray(0, KEY_ID_BYTES);
    return new LocalRootKeyFile(key, fingerprint);
  }

  async wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    const header = Buffer.concat([Buffer.of(FORMAT_V1), this.fingerprint, randomBytes(IV_BYTES)]);
    const cipher = createCipheriv('aes-256-gcm', this.key, header.subarray(1 + KEY_ID_BYTES));
    cipher.setAAD(Buffer.concat([header, aad]));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([header, body, cipher.getAuthTag()]);
  }

  async unwrap(blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    if (b.length < 1 + KEY_ID_BYTES + IV_BYTES + TAG_BYTES) {
      throw new CorruptDataError('root-key blob is truncated', { reason: 'truncated' });
    }
    if (b[0] !== FORMAT_V1) throw new UnsupportedVersionError(`root-key blob version ${b[0]} is not supported`);
    if (!b.subarray(1, 1 + KEY_ID_BYTES).equals(this.fingerprint)) {
      throw new WrongKeyError('root-key blob was made under another root key');
    }
    const headerEnd = 1 + KEY_ID_BYTES + IV_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', this.key, b.subarray(1 + KEY_ID_BYTES, headerEnd));
    decipher.setAAD(Buffer.concat([b.subarray(0, headerEnd), aad]));
    decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(b.subarray(headerEnd, b.length - TAG_BYTES)), decipher.final()]);
    } catch (cause) {
      throw new CorruptDataError('root-key blob failed authentication', { reason: 'auth', cause });
    }
  }
}
