import { randomBytes } from 'node:crypto';
import { CorruptDataError, InvalidArgumentError, KeyDestroyedError, NotFoundError, VectorsealError, WrongKeyError } from '../errors.js';
import { contextBytes, type DekContext } from './context.js';
import type { KekEntry } from './keyring-file.js';
import { DEK_BYTES, KekProvider, type GeneratedDek, type KekDescription, type WrappedDek } from './provider.js';
import { XksClient, type XksConnection } from './xks-client.js';

/**
 * KEKs behind an External Key Store proxy (the AWS KMS XKS Proxy API): hold
 * your own key without any cloud. The KEK never leaves the proxy's HSM; DEKs
 * are sealed by the proxy's Encrypt and opened by its Decrypt, AES-256-GCM
 * with the DEK context as additional authenticated data.
 *
 * XKS has no API to create keys, so versions are external keys the proxy's
 * administrator creates: version N of KEK `k` is external key `k.vN`
 * (`vectorseal xks create-key --id k.v2`). `rotate` moves to the next one
 * once it exists.
 *
 * Wrapped DEK blob:
 *   format (1) = 1 || version (u32) || id length (1) || external key id
 *   || IV length (1) || IV || tag (16) || metadata length (1) || metadata
 *   || ciphertext (32)
 * The AAD is the blob's header up to the external key id, then the DEK
 * context, so a wrap moved to another collection, or relabelled to another
 * key, fails. The external key id in the blob tells another key's wrap
 * (WrongKeyError) from a damaged one (CorruptDataError).
 *
 * Connection settings (endpoint, CA, credentials) come from the program,
 * never from the keyring: the data directory must not choose whom the store
 * trusts.
 */

export const XKS_PROVIDER = 'xks';
const FORMAT = 1;
const AAD_LABEL = 'vectorseal/dek-wrap/xks/v1';
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$/;
const TAG_BYTES = 16;

export interface XksKekOptions extends XksConnection {
  /** The KEK's base name; version N is external key `<keyId>.v<N>`. */
  keyId: string;
  /**
   * Creates the next version's external key when `rotate` finds none, for a
   * program that also administers the proxy's HSM (XKS itself cannot create
   * keys). Without it, the administrator creates the key first.
   */
  createVersion?: (externalKeyId: string) => Promise<void>;
}

export class XksKekProvider extends KekProvider {
  readonly name = XKS_PROVIDER;
  readonly keyId: string;
  private readonly client: XksClient;
  private readonly createVersion: ((externalKeyId: string) => Promise<void>) | undefined;
  private current: number | undefined;

  constructor(options: XksKekOptions) {
    super();
    if (typeof options?.keyId !== 'string' || !KEY_ID.test(options.keyId)) {
      throw new InvalidArgumentError('"keyId" expected 1-101 characters [A-Za-z0-9_-], starting with a letter or digit');
    }
    this.keyId = options.keyId;
    this.client = new XksClient(options);
    this.createVersion = options.createVersion;
  }

  /** The external key id of a version. */
  externalKeyId(version: number): string {
    return `${this.keyId}.v${version}`;
  }

  protected async _generateDataKey(ctx: DekContext): Promise<GeneratedDek> {
    const plaintext = randomBytes(DEK_BYTES);
    try {
      return { plaintext, wrapped: await this.seal(plaintext, ctx, 'GenerateDataKey') };
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
  }

  protected _wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek> {
    return this.seal(Buffer.from(dek.buffer, dek.byteOffset, dek.byteLength), ctx, 'Encrypt');
  }

  protected async _unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array> {
    if (wrapped.keyId !== this.keyId) throw new WrongKeyError(`DEK is wrapped under XKS KEK "${wrapped.keyId}", not "${this.keyId}"`);
    const b = Buffer.from(wrapped.blob);
    const parsed = parseBlob(b);
    const expectedId = this.externalKeyId(parsed.version);
    if (parsed.externalKeyId !== expectedId) {
      throw new WrongKeyError(`DEK was wrapped under external key ${parsed.externalKeyId}, not a version of XKS KEK "${this.keyId}"`);
    }
    const out = await this.client.call(
      `/keys/${encodeURIComponent(expectedId)}/decrypt`,
      'Decrypt',
      {
        ciphertext: parsed.ciphertext.toString('base64'),
        initializationVector: parsed.iv.toString('base64'),
        authenticationTag: parsed.tag.toString('base64'),
        additionalAuthenticatedData: aad(parsed.header, ctx).toString('base64'),
        ...(parsed.metadata.length > 0 ? { ciphertextMetadata: parsed.metadata.toString('base64') } : {}),
        encryptionAlgorithm: 'AES_GCM',
      },
      this.arn(parsed.version),
    );
    const dek = typeof out['plaintext'] === 'string' ? Buffer.from(out['plaintext'], 'base64') : Buffer.alloc(0);
    if (dek.length !== DEK_BYTES)
      throw new CorruptDataError('the XKS proxy returned a plaintext of the wrong size', { reason: 'wrapped-dek' });
    return dek;
  }

  protected async _describe(): Promise<KekDescription> {
    const versions: number[] = [];
    let status: string | undefined;
    for (let v = 1; v <= 10_000; v++) {
      const md = await this.metadata(v);
      if (md === undefined) break;
      versions.push(v);
      status = md.keyStatus;
    }
    this.current = versions.at(-1);
    const state: KekDescription['state'] = versions.length === 0 ? 'destroyed' : status === 'ENABLED' ? 'enabled' : 'disabled';
    return {
      provider: this.name,
      keyId: this.keyId,
      state,
      ...(this.current === undefined ? {} : { currentVersion: String(this.current) }),
      versions: versions.map(String),
      details: { externalKeyId: this.current === undefined ? '' : this.externalKeyId(this.current) },
    };
  }

  /** Moves new wraps to the next version's external key, which the proxy's administrator must have created. */
  protected async _rotate(): Promise<KekDescription> {
    const before = await this._describe();
    const next = (this.current ?? 0) + 1;
    if ((await this.metadata(next)) === undefined && this.createVersion !== undefined) await this.createVersion(this.externalKeyId(next));
    if ((await this.metadata(next)) === undefined) {
      throw new NotFoundError(
        `XKS KEK "${this.keyId}" cannot rotate: external key ${this.externalKeyId(next)} does not exist on ` +
          `the proxy (vectorseal xks create-key --id ${this.externalKeyId(next)})`,
      );
    }
    const after = await this._describe();
    if (after.currentVersion === before.currentVersion)
      throw new VectorsealError(`XKS KEK "${this.keyId}" did not move to version ${next}`);
    return after;
  }

  override async close(): Promise<void> {
    this.client.close();
  }

  private async seal(dek: Buffer, ctx: DekContext, kmsOperation: string): Promise<WrappedDek> {
    if (this.current === undefined) await this._describe();
    const version = this.current;
    if (version === undefined)
      throw new NotFoundError(`XKS KEK "${this.keyId}" has no versions: create external key ${this.externalKeyId(1)} on the proxy`);
    const externalKeyId = this.externalKeyId(version);
    const header = blobHeader(version, externalKeyId);
    const out = await this.client.call(
      `/keys/${encodeURIComponent(externalKeyId)}/encrypt`,
      kmsOperation,
      {
        plaintext: dek.toString('base64'),
        additionalAuthenticatedData: aad(header, ctx).toString('base64'),
        encryptionAlgorithm: 'AES_GCM',
      },
      this.arn(version),
    );
    const ciphertext = b64(out['ciphertext']);
    const iv = b64(out['initializationVector']);
    const tag = b64(out['authenticationTag']);
    const metadata = out['ciphertextMetadata'] === undefined ? Buffer.alloc(0) : b64(out['ciphertextMetadata']);
    if (ciphertext.length !== DEK_BYTES || (iv.length !== 12 && iv.length !== 16) || tag.length !== TAG_BYTES || metadata.length > 20) {
      throw new CorruptDataError('the XKS proxy returned a malformed Encrypt response', { reason: 'wrapped-dek' });
    }
    const blob = Buffer.concat([header, Buffer.of(iv.length), iv, tag, Buffer.of(metadata.length), metadata, ciphertext]);
    return { provider: this.name, keyId: this.keyId, kekVersion: String(version), blob };
  }

  /** GetKeyMetadata of a version; undefined when the proxy does not have that key. */
  private async metadata(version: number): Promise<{ keyStatus: string; keyUsage: string[] } | undefined> {
    try {
      const out = await this.client.call(
        `/keys/${encodeURIComponent(this.externalKeyId(version))}/metadata`,
        'DescribeKey',
        {},
        this.arn(version),
      );
      return { keyStatus: String(out['keyStatus']), keyUsage: Array.isArray(out['keyUsage']) ? out['keyUsage'].map(String) : [] };
    } catch (err) {
      if (err instanceof KeyDestroyedError) return undefined;
      throw err;
    }
  }

  private arn(version: number): string {
    return `vectorseal:xks:${this.externalKeyId(version)}`;
  }
}

function blobHeader(version: number, externalKeyId: string): Buffer {
  const id = Buffer.from(externalKeyId, 'utf8');
  const h = Buffer.alloc(6 + id.length);
  h.writeUInt8(FORMAT, 0);
  h.writeUInt32BE(version, 1);
  h.writeUInt8(id.length, 5);
  id.copy(h, 6);
  return h;
}

function parseBlob(b: Buffer): {
  header: Buffer;
  version: number;
  externalKeyId: string;
  iv: Buffer;
  tag: Buffer;
  metadata: Buffer;
  ciphertext: Buffer;
} {
  const corrupt = () => new CorruptDataError('wrapped DEK has the wrong size or format', { reason: 'wrapped-dek' });
  if (b.length < 6 || b[0] !== FORMAT) throw corrupt();
  const version = b.readUInt32BE(1);
  const idLen = b[5]!;
  let at = 6 + idLen;
  if (b.length < at + 1) throw corrupt();
  const header = b.subarray(0, at);
  const externalKeyId = b.subarray(6, at).toString('utf8');
  const ivLen = b[at]!;
  at += 1;
  if (ivLen !== 12 && ivLen !== 16) throw corrupt();
  if (b.length < at + ivLen + TAG_BYTES + 1) throw corrupt();
  const iv = b.subarray(at, at + ivLen);
  at += ivLen;
  const tag = b.subarray(at, at + TAG_BYTES);
  at += TAG_BYTES;
  const metaLen = b[at]!;
  at += 1;
  if (metaLen > 20 || b.length !== at + metaLen + DEK_BYTES) throw corrupt();
  const metadata = b.subarray(at, at + metaLen);
  const ciphertext = b.subarray(at + metaLen);
  return { header, version, externalKeyId, iv, tag, metadata, ciphertext };
}

function aad(header: Buffer, ctx: DekContext): Buffer {
  return Buffer.concat([header, contextBytes(ctx, AAD_LABEL)]);
}

function b64(v: unknown): Buffer {
  if (typeof v !== 'string') throw new CorruptDataError('the XKS proxy returned a malformed Encrypt response', { reason: 'wrapped-dek' });
  return Buffer.from(v, 'base64');
}

/**
 * A KeyManager provider factory for `xks` KEK entries. Only the entry's
 * keyId comes from the keyring; the proxy's endpoint, CA and credentials are
 * the program's (`connection`), never the data directory's.
 */
export function xksProviderFactory(connection: Omit<XksKekOptions, 'keyId'>): (entry: Pick<KekEntry, 'keyId'>) => XksKekProvider {
  return (entry) => new XksKekProvider({ ...connection, keyId: entry.keyId });
}
