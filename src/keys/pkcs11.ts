import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  CorruptDataError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyProviderUnavailableError,
  NotFoundError,
  VectorsealError,
  WrongKeyError,
} from '../errors.js';
import { contextBytes, type DekContext } from './context.js';
import type { KekConfig } from './kek-config.js';
import type { ProviderFactory } from './provider-registry.js';
import {
  cmac,
  destroyKey,
  findAesKeys,
  gcmDecrypt,
  gcmEncrypt,
  generateAesKey,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  gcmSelfTest,
  isDisabledByMarker,
  isEnabled,
  pickWinner,
  REQUIRED_MECHANISMS,
  setEnabled,
  type TokenKey,
} from '../pkcs11/aes.js';
import { ckrName, isFunctionNotPermitted, isGenericFailure, isKeyHandleGone, mapPkcs11Error } from '../pkcs11/errors.js';
import { Pkcs11Token, type Handle, type Pkcs11TokenOptions } from '../pkcs11/token.js';
import { DEK_BYTES, KekProvider, wrapAuthFailure, type GeneratedDek, type KekDescription, type WrappedDek } from './provider.js';

/**
 * KEKs in a PKCS#11 token (an HSM, or SoftHSM2 for development). Each KEK
 * version is its own AES-256 token object labelled `<keyLabel>/v<N>`,
 * generated inside the token as sensitive and non-extractable: the KEK never
 * enters process memory. DEKs are sealed and opened by the token with
 * AES-256-GCM (CKM_AES_GCM); the DEK itself is in process memory, as it must
 * be to encrypt pages.
 *
 * Wrapped DEK blob (81 bytes):
 *   format (1) = 1 || KEK version (u32) || key check value (16) || IV (12)
 *   || AES-256-GCM(DEK) (32) || tag (16)
 * The associated data is the blob's header (format, version, check value)
 * followed by the DEK context (store, collection, DEK version), so a wrap
 * copied to another collection fails to authenticate. The key check value is
 * AES-CMAC of a fixed label under the KEK version, computed by the token; it
 * tells a wrap made by another token's key of the same label (WrongKeyError)
 * from a damaged or moved wrap (CorruptDataError).
 *
 * Disabling a KEK clears CKA_ENCRYPT and CKA_DECRYPT on its versions inside
 * the token, so every process using it is refused (KeyDisabledError) until it
 * is enabled again. Destroying a version (C_DestroyObject) crypto-shreds the
 * DEKs wrapped only under it.
 */

export const PKCS11_PROVIDER = 'pkcs11';

const BLOB_FORMAT = 1;
const KCV_SIZE = 16;
const HEADER_SIZE = 1 + 4 + KCV_SIZE;
const BLOB_SIZE = HEADER_SIZE + GCM_IV_BYTES + DEK_BYTES + GCM_TAG_BYTES;
const KCV_LABEL = Buffer.from('vectorseal/pkcs11/kek-check/v1', 'utf8');
const AAD_LABEL = 'vectorseal/dek-wrap/pkcs11/v1';
const KEY_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,55}$/;
/**
 * Decrypt failures that, once the check value matched, mean the wrap does not
 * authenticate. SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR, a
 * code HSMs also use for device faults: that one blames the data only after
 * the token passed a GCM self-test (see unwrap).
 */
const AUTH_FAILURES = new Set(['CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE', 'CKR_DATA_INVALID', 'CKR_DATA_LEN_RANGE']);

export interface Pkcs11KekOptions extends Pkcs11TokenOptions {
  /** The KEK's label on the token; versions are the objects `<keyLabel>/v<N>`. Also the provider's keyId. */
  keyLabel: string;
}

/** The keyring `config` of a pkcs11 KEK: where the token is and where its PIN comes from, never the PIN. */
export interface Pkcs11KeyringConfig extends Record<string, string> {
  module: string;
}

interface VersionKey {
  key: TokenKey;
  kcv?: Buffer;
}

export class Pkcs11KekProvider extends KekProvider {
  readonly name = PKCS11_PROVIDER;
  readonly keyId: string;
  private keys = new Map<number, VersionKey>();
  /** The token's login generation the handles in `keys` belong to. */
  private keysGeneration = -1;
  private current: number | undefined;
  private closed = false;

  private constructor(
    private readonly token: Pkcs11Token,
    keyLabel: string,
    private readonly modulePath: string,
  ) {
    super();
    this.keyId = keyLabel;
  }

  /**
   * Logs in to the token and opens the KEK. Token absent →
   * KeyProviderUnavailableError, wrong PIN → AccessDeniedError, GCM or CMAC
   * missing → UnsupportedOperationError. The KEK need not exist yet (see `init`).
   */
  static async open(options: Pkcs11KekOptions): Promise<Pkcs11KekProvider> {
    if (typeof options?.keyLabel !== 'string' || !KEY_LABEL.test(options.keyLabel)) {
      throw new InvalidArgumentError('"keyLabel" expected 1-56 characters [A-Za-z0-9._-], starting with a letter or digit');
    }
    const token = await Pkcs11Token.open(options);
    try {
      token.requireMechanisms([...REQUIRED_MECHANISMS]);
    } catch (err) {
      await token.close();
      throw err;
    }
    return new Pkcs11KekProvider(token, options.keyLabel, options.module);
  }

  /** Opens the KEK and generates its first version on the token when it has none. */
  static async init(options: Pkcs11KekOptions): Promise<Pkcs11KekProvider> {
    const provider = await Pkcs11KekProvider.open(options);
    try {
      if ((await provider.versions()).length === 0) await provider.createVersion(1);
    } catch (err) {
      await provider.close();
      throw err;
    }
    return provider;
  }

  protected async _generateDataKey(ctx: DekContext): Promise<GeneratedDek> {
    const plaintext = randomBytes(DEK_BYTES);
    try {
      return { plaintext, wrapped: await this._wrap(plaintext, ctx) };
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
  }

  protected async _wrap(dek: Uint8Array, ctx: DekContext): Promise<WrappedDek> {
    const version = await this.currentVersion();
    return this.op('wrap', version, async (session, vk) => {
      const header = Buffer.alloc(HEADER_SIZE);
      header.writeUInt8(BLOB_FORMAT, 0);
      header.writeUInt32BE(version, 1);
      (await this.checkValue(session, vk)).copy(header, 5);
      const { iv, sealed } = await gcmEncrypt(
        this.token,
        session,
        vk.key.handle,
        randomBytes(GCM_IV_BYTES),
        aad(header, ctx),
        Buffer.from(dek.buffer, dek.byteOffset, dek.byteLength),
      );
      if (iv.length !== GCM_IV_BYTES)
        throw new KeyProviderUnavailableError(`PKCS#11 token "${this.token.info.label}" used a ${iv.length}-byte GCM IV`);
      const blob = Buffer.concat([header, iv, sealed]);
      return { provider: this.name, keyId: this.keyId, kekVersion: String(version), blob };
    });
  }

  protected async _unwrap(wrapped: WrappedDek, ctx: DekContext): Promise<Uint8Array> {
    if (wrapped.keyId !== this.keyId) {
      throw new WrongKeyError(`DEK is wrapped under PKCS#11 KEK "${wrapped.keyId}", not "${this.keyId}"`);
    }
    const blob = Buffer.from(wrapped.blob);
    if (blob.length !== BLOB_SIZE || blob.readUInt8(0) !== BLOB_FORMAT) {
      throw new CorruptDataError('wrapped DEK has the wrong size or format', { reason: 'wrapped-dek' });
    }
    const version = blob.readUInt32BE(1);
    const header = blob.subarray(0, HEADER_SIZE);
    return this.op('unwrap', version, async (session, vk) => {
      if (!timingSafeEqual(await this.checkValue(session, vk), header.subarray(5))) {
        throw new WrongKeyError(
          `PKCS#11 KEK "${this.keyId}" version ${version} on token "${this.token.info.label}" is not the key this DEK was wrapped with`,
        );
      }
      const iv = blob.subarray(HEADER_SIZE, HEADER_SIZE + GCM_IV_BYTES);
      try {
        return await gcmDecrypt(this.token, session, vk.key.handle, iv, aad(header, ctx), blob.subarray(HEADER_SIZE + GCM_IV_BYTES));
      } catch (err) {
        const name = ckrName(err);
        if (name !== undefined && AUTH_FAILURES.has(name)) throw wrapAuthFailure(err);
        if (isGenericFailure(err)) {
          // The token's word for both "tag mismatch" and "device fault": a working token means the data is bad.
          if (await gcmSelfTest(this.token, session, vk.key.handle)) throw wrapAuthFailure(err);
          throw new KeyProviderUnavailableError(
            `PKCS#11 unwrap with KEK "${this.keyId}" v${version} on token "${this.token.info.label}" failed with ` +
              `${name} and the token failed its self-test`,
            { cause: err },
          );
        }
        throw err;
      }
    });
  }

  protected async _describe(): Promise<KekDescription> {
    const versions = await this.versions();
    const current = versions.at(-1);
    let state: KekDescription['state'] = 'destroyed';
    if (current !== undefined) {
      state = (await this.token.withSession((s) =>
        this.guard('describe', () => {
          const vk = this.keysFor(s).get(current);
          return vk !== undefined && isEnabled(this.token, s, vk.key);
        }),
      ))
        ? 'enabled'
        : 'disabled';
    }
    const info = this.token.info;
    return {
      provider: this.name,
      keyId: this.keyId,
      state,
      ...(current === undefined ? {} : { currentVersion: String(current) }),
      versions: versions.map(String),
      details: {
        module: this.modulePath,
        token: info.label,
        tokenSerial: info.serialNumber,
        manufacturer: info.manufacturer,
        model: info.model,
        slot: info.slot,
      },
    };
  }

  protected async _rotate(): Promise<KekDescription> {
    const next = ((await this.versions()).at(-1) ?? 0) + 1;
    await this.createVersion(next);
    return this._describe();
  }

  /**
   * Destroys one KEK version on the token (C_DestroyObject): every DEK still
   * wrapped only under it becomes unrecoverable. Used after rotation and for
   * crypto-shredding.
   */
  async destroyVersion(version: number): Promise<void> {
    if (!Number.isSafeInteger(version) || version < 1)
      throw new InvalidArgumentError(`"version" expected a positive integer, got ${String(version)}`);
    const label = this.versionLabel(version);
    await this.token.withSession((s) =>
      this.guard(`destroy of version ${version}`, () => {
        for (const k of findAesKeys(this.token, s, (l) => l === label, label)) destroyKey(this.token, s, k.handle);
      }),
    );
    this.keys.delete(version);
    this.current = undefined;
  }

  /** After a rotation has rewrapped everything: destroys the versions older than `current` on the token. */
  protected override async _destroyOldVersions(current: string): Promise<string[]> {
    const keep = Number(current);
    const old = (await this.versions()).filter((v) => v < keep);
    for (const v of old) await this.destroyVersion(v);
    return old.map(String);
  }

  /** Destroys every version of this KEK on the token: crypto-shredding whatever it protected. */
  protected override async _destroyKek(): Promise<'destroyed'> {
    for (const v of await this.versions()) await this.destroyVersion(v);
    return 'destroyed';
  }

  /** Refuses every wrap and unwrap with this KEK, in every process, until `enable`. */
  async disable(): Promise<void> {
    await this.setAllEnabled(false);
  }

  async enable(): Promise<void> {
    await this.setAllEnabled(true);
  }

  /** KEK versions present on the token, ascending. */
  async versions(): Promise<number[]> {
    await this.token.withSession((s) => this.guard('listing versions', () => this.scan(s)));
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  /** The version keys, looked up again when the token was logged in again since (handles changed). */
  private keysFor(session: Handle): Map<number, VersionKey> {
    if (this.keysGeneration !== this.token.generation) this.scan(session);
    return this.keys;
  }

  /** Finds this KEK's versions on the token, on the caller's session (never a nested one: the pool is bounded). */
  private scan(session: Handle): void {
    const generation = this.token.generation;
    const prefix = `${this.keyId}/v`;
    const found = findAesKeys(this.token, session, (l) => l.startsWith(prefix) && parseVersion(l.slice(prefix.length)) !== undefined);
    const byVersion = new Map<number, TokenKey[]>();
    for (const k of found) {
      const v = parseVersion(k.label.slice(prefix.length))!;
      byVersion.set(v, [...(byVersion.get(v) ?? []), k]);
    }
    const next = new Map<number, VersionKey>();
    for (const [v, keys] of byVersion) {
      const winner = pickWinner(keys)!;
      const cached = this.keys.get(v);
      // The check value survives a re-login (same key); the handle does not.
      next.set(
        v,
        cached && cached.key.id.equals(winner.id) ? { key: winner, ...(cached.kcv ? { kcv: cached.kcv } : {}) } : { key: winner },
      );
    }
    this.keys = next;
    this.keysGeneration = generation;
    this.current = [...next.keys()].sort((a, b) => a - b).at(-1);
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.keys.clear();
    await this.token.close();
  }

  private versionLabel(version: number): string {
    return `${this.keyId}/v${version}`;
  }

  private async currentVersion(): Promise<number> {
    if (this.current === undefined) await this.versions();
    if (this.current === undefined)
      throw new NotFoundError(`PKCS#11 KEK "${this.keyId}" has no versions on token "${this.token.info.label}"`);
    return this.current;
  }

  /** Generates version `version`; if another process made it at the same moment, both settle on one object. */
  private async createVersion(version: number): Promise<void> {
    const label = this.versionLabel(version);
    await this.token.withSession(async (s) => {
      const mine = await this.guardAsync(`generation of version ${version}`, () => generateAesKey(this.token, s, label));
      this.guard(`generation of version ${version}`, () => {
        const all = findAesKeys(this.token, s, (l) => l === label, label);
        const winner = pickWinner(all);
        if (winner && !winner.id.equals(mine.id)) destroyKey(this.token, s, mine.handle);
      });
    });
    await this.versions();
  }

  private async setAllEnabled(enabled: boolean): Promise<void> {
    await this.token.withSession((s) =>
      this.guard(enabled ? 'enable' : 'disable', () => {
        this.scan(s);
        for (const vk of this.keys.values()) setEnabled(this.token, s, vk.key, enabled);
      }),
    );
  }

  private async checkValue(session: Handle, vk: VersionKey): Promise<Buffer> {
    vk.kcv ??= await cmac(this.token, session, vk.key.handle, KCV_LABEL);
    return vk.kcv;
  }

  /**
   * Runs one keyed operation on a pooled session with typed errors. A version
   * this process does not know is looked up again once (another process may
   * have rotated); a version gone from the token is KeyDestroyedError.
   */
  private async op<T>(what: string, version: number, fn: (session: Handle, vk: VersionKey) => Promise<T>): Promise<T> {
    if (this.closed) throw new VectorsealError(`PKCS#11 KEK "${this.keyId}" provider is closed`);
    const label = `${what} with KEK "${this.keyId}" v${version} on token "${this.token.info.label}"`;
    // The key is looked up inside the session: after a re-login (the pool retries once) old handles are invalid.
    return this.token.withSession(async (session) => {
      try {
        let vk = this.keysFor(session).get(version);
        if (vk === undefined) {
          this.scan(session);
          vk = this.keys.get(version);
        }
        if (vk === undefined) {
          throw new KeyDestroyedError(
            `PKCS#11 KEK "${this.keyId}" version ${version} does not exist on token "${this.token.info.label}" ` +
              '(destroyed, or another token)',
          );
        }
        if (isDisabledByMarker(this.token, session, vk.key.label)) {
          throw new KeyDisabledError(`PKCS#11 KEK "${this.keyId}" is disabled (${what} refused)`);
        }
        return await fn(session, vk);
      } catch (err) {
        if (err instanceof VectorsealError) throw err;
        if (isKeyHandleGone(err)) {
          this.keys.delete(version);
          this.current = undefined;
          throw new KeyDestroyedError(`PKCS#11 ${label} failed: the key object is gone from the token`, { cause: err });
        }
        if (isFunctionNotPermitted(err))
          throw new KeyDisabledError(`PKCS#11 KEK "${this.keyId}" is disabled (${what} refused by the token)`, { cause: err });
        throw mapPkcs11Error(err, label);
      }
    });
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw mapPkcs11Error(err, `${what} of KEK "${this.keyId}" on token "${this.token.info.label}"`);
    }
  }

  private async guardAsync<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapPkcs11Error(err, `${what} of KEK "${this.keyId}" on token "${this.token.info.label}"`);
    }
  }
}

function parseVersion(text: string): number | undefined {
  if (!/^[1-9]\d{0,9}$/.test(text)) return undefined;
  const v = Number(text);
  return v <= 0xffffffff ? v : undefined;
}

function aad(header: Buffer, ctx: DekContext): Buffer {
  return Buffer.concat([header, contextBytes(ctx, AAD_LABEL)]);
}

/**
 * Provider options from the caller's KEK configuration: `keyId` is the key
 * label, `config` names module, token or slot, and the PIN's source. Never
 * from a keyring: the module is native code loaded into this process.
 */
export function pkcs11OptionsFromConfig(
  entry: Pick<KekConfig, 'keyId' | 'config'>,
  overrides: Partial<Pkcs11KekOptions> = {},
): Pkcs11KekOptions {
  const c = entry.config ?? {};
  if (Object.prototype.hasOwnProperty.call(c, 'pin'))
    throw new InvalidArgumentError('a KEK configuration must not hold a PKCS#11 PIN; use "pinEnv" or "pinFile"');
  const options: Pkcs11KekOptions = { module: c['module'] ?? '', keyLabel: entry.keyId };
  if (c['token'] !== undefined) options.token = c['token'];
  if (c['slot'] !== undefined) options.slot = Number(c['slot']);
  if (c['pinEnv'] !== undefined) options.pinEnv = c['pinEnv'];
  if (c['pinFile'] !== undefined) options.pinFile = c['pinFile'];
  if (c['maxSessions'] !== undefined) options.maxSessions = Number(c['maxSessions']);
  const merged = { ...options, ...overrides };
  // A PIN given directly replaces the configured PIN source rather than conflicting with it.
  if (overrides.pin !== undefined) {
    delete merged.pinEnv;
    delete merged.pinFile;
  }
  return merged;
}

/** The KEK configuration `config` for a pkcs11 KEK: everything needed to reopen it except the PIN itself. */
export function pkcs11KeyringConfig(options: Pkcs11KekOptions): Pkcs11KeyringConfig {
  if (options.pinEnv === undefined && options.pinFile === undefined) {
    throw new InvalidArgumentError('a pkcs11 KEK configuration needs "pinEnv" or "pinFile" so it can be reopened');
  }
  const config: Pkcs11KeyringConfig = { module: options.module };
  if (options.token !== undefined) config['token'] = options.token;
  if (options.slot !== undefined) config['slot'] = String(options.slot);
  if (options.pinEnv !== undefined) config['pinEnv'] = options.pinEnv;
  if (options.pinFile !== undefined) config['pinFile'] = options.pinFile;
  if (options.maxSessions !== undefined) config['maxSessions'] = String(options.maxSessions);
  return config;
}

/**
 * A provider factory for `pkcs11` KEKs: the caller's configuration of the KEK
 * (module, token, PIN source), with `overrides` (e.g. a PIN fetched by the
 * program, or the module itself) winning over it. Nothing comes from the keyring
 * but the key label it is bound to.
 */
export function pkcs11ProviderFactory(overrides: Partial<Pkcs11KekOptions> = {}): ProviderFactory {
  return (binding, _name, config) =>
    Pkcs11KekProvider.open(
      pkcs11OptionsFromConfig({ keyId: binding.keyId, ...(config?.config === undefined ? {} : { config: config.config }) }, overrides),
    );
}
