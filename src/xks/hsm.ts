import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, KeyProviderUnavailableError, NotFoundError, VectorsealError } from '../errors.js';
import {
  findAesKeys,
  gcmDecrypt,
  gcmEncrypt,
  gcmSelfTest,
  generateAesKey,
  GCM_TAG_BYTES,
  isDisabledByMarker,
  keyUsage,
  pickWinner,
  setEnabled,
  type TokenKey,
} from '../pkcs11/aes.js';
import { ckrName, isGenericFailure, mapPkcs11Error } from '../pkcs11/errors.js';
import { Pkcs11Token, type Handle, type Pkcs11TokenOptions } from '../pkcs11/token.js';
import { xksErrors } from './errors.js';

/**
 * The XKS proxy's external keys: AES-256 keys inside a PKCS#11 token,
 * labelled `xks/<externalKeyId>`, generated there as sensitive,
 * non-extractable, read-only, GCM-only. Key usage is the key's own
 * CKA_ENCRYPT / CKA_DECRYPT, fixed at creation, so the token itself refuses
 * a use the metadata does not list. Disabling is the token's marker object.
 * A separate health key (`xks-health-check`) serves the deep health check,
 * so periodic checks never touch a customer key.
 */

export const XKS_KEY_ID = /^[A-Za-z0-9._-]{1,128}$/;
const LABEL_PREFIX = 'xks/';
const HEALTH_LABEL = 'xks-health-check';

export type XksKeyUsage = 'encrypt-decrypt' | 'encrypt' | 'decrypt' | 'none';

export interface XksKeyMetadata {
  encrypt: boolean;
  decrypt: boolean;
  enabled: boolean;
}

interface CachedKey {
  key: TokenKey;
  generation: number;
}

export class XksHsm {
  private keys = new Map<string, CachedKey>();

  private constructor(readonly token: Pkcs11Token) {}

  /** Logs in to the token and makes sure the health key exists. */
  static async open(options: Pkcs11TokenOptions): Promise<XksHsm> {
    const token = await Pkcs11Token.open(options);
    try {
      token.requireMechanisms(['CKM_AES_KEY_GEN', 'CKM_AES_GCM']);
      const hsm = new XksHsm(token);
      await token.withSession(async (s) => {
        if (findAesKeys(token, s, (l) => l === HEALTH_LABEL, HEALTH_LABEL).length === 0) {
          await generateAesKey(token, s, HEALTH_LABEL, { encrypt: true, decrypt: true, sign: false });
        }
      });
      return hsm;
    } catch (err) {
      await token.close();
      throw err instanceof VectorsealError ? err : mapPkcs11Error(err, 'opening the XKS key token');
    }
  }

  /** Generates external key `id` in the token with the given usage. */
  async createKey(id: string, usage: XksKeyUsage): Promise<void> {
    if (!XKS_KEY_ID.test(id)) throw new InvalidArgumentError('an external key id expected 1-128 characters of A-Z a-z 0-9 . - _');
    const label = LABEL_PREFIX + id;
    await this.token.withSession(async (s) => {
      if (findAesKeys(this.token, s, (l) => l === label, label).length > 0)
        throw new InvalidArgumentError(`external key ${id} already exists`);
      await generateAesKey(this.token, s, label, {
        encrypt: usage === 'encrypt-decrypt' || usage === 'encrypt',
        decrypt: usage === 'encrypt-decrypt' || usage === 'decrypt',
        sign: false,
      });
    });
  }

  /** Turns an external key on or off for every proxy on this token. */
  async setKeyEnabled(id: string, enabled: boolean): Promise<void> {
    await this.token.withSession((s) => {
      const key = this.find(s, id);
      if (key === undefined) throw new NotFoundError(`external key ${id} does not exist on token "${this.token.info.label}"`);
      setEnabled(this.token, s, key, enabled);
    });
  }

  /** The key's usage and status; KeyNotFoundException when it does not exist. */
  metadata(id: string): Promise<XksKeyMetadata> {
    return this.run(`metadata of ${id}`, (s) => {
      const key = this.required(s, id);
      const usage = keyUsage(this.token, s, key.handle);
      return { ...usage, enabled: !isDisabledByMarker(this.token, s, key.label) };
    });
  }

  /** AES-256-GCM in the token. The IV is the token's when it insists on making its own. */
  encrypt(id: string, plaintext: Buffer, aad: Buffer): Promise<{ iv: Buffer; ciphertext: Buffer; tag: Buffer }> {
    return this.run(`encrypt with ${id}`, async (s) => {
      const key = this.usable(s, id, 'encrypt');
      const { iv, sealed } = await gcmEncrypt(this.token, s, key.handle, randomBytes(12), aad, plaintext);
      return { iv, ciphertext: sealed.subarray(0, sealed.length - GCM_TAG_BYTES), tag: sealed.subarray(sealed.length - GCM_TAG_BYTES) };
    });
  }

  /** AES-256-GCM decryption in the token; InvalidCiphertextException when it does not authenticate. */
  decrypt(id: string, iv: Buffer, aad: Buffer, ciphertext: Buffer, tag: Buffer): Promise<Buffer> {
    return this.run(`decrypt with ${id}`, async (s) => {
      const key = this.usable(s, id, 'decrypt');
      try {
        return await gcmDecrypt(this.token, s, key.handle, iv, aad, Buffer.concat([ciphertext, tag]));
      } catch (err) {
        const name = ckrName(err);
        if (name === 'CKR_ENCRYPTED_DATA_INVALID' || name === 'CKR_ENCRYPTED_DATA_LEN_RANGE')
          throw xksErrors.invalidCiphertext('The ciphertext, AAD, IV or tag does not authenticate');
        // SoftHSM2 says CKR_GENERAL_ERROR for a tag mismatch; a device fault says the same. The health key decides.
        if (isGenericFailure(err) && (await gcmSelfTest(this.token, s, this.healthKey(s).handle))) {
          throw xksErrors.invalidCiphertext('The ciphertext, AAD, IV or tag does not authenticate');
        }
        throw err;
      }
    });
  }

  /** Deep health check: a GCM round trip under the health key. */
  async healthy(): Promise<boolean> {
    try {
      return await this.token.withSession(async (s) => {
        // Thrown rather than returned: a failed self-test may leave an operation active, and the pool drops sessions whose call threw.
        if (!(await gcmSelfTest(this.token, s, this.healthKey(s).handle)))
          throw new KeyProviderUnavailableError('the GCM self-test failed');
        return true;
      });
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.keys.clear();
    await this.token.close();
  }

  private healthKey(s: Handle): TokenKey {
    const key = pickWinner(findAesKeys(this.token, s, (l) => l === HEALTH_LABEL, HEALTH_LABEL));
    if (key === undefined) throw new KeyProviderUnavailableError(`the XKS health key is missing from token "${this.token.info.label}"`);
    return key;
  }

  /** The key's handle for this login (looked up again after a re-login), or undefined. */
  private find(s: Handle, id: string): TokenKey | undefined {
    const cached = this.keys.get(id);
    if (cached && cached.generation === this.token.generation) return cached.key;
    const generation = this.token.generation;
    const label = LABEL_PREFIX + id;
    const key = pickWinner(findAesKeys(this.token, s, (l) => l === label, label));
    if (key === undefined) {
      this.keys.delete(id);
      return undefined;
    }
    this.keys.set(id, { key, generation });
    return key;
  }

  private required(s: Handle, id: string): TokenKey {
    const key = this.find(s, id);
    if (key === undefined) throw xksErrors.keyNotFound(`External key ${id} was not found`);
    return key;
  }

  private usable(s: Handle, id: string, use: 'encrypt' | 'decrypt'): TokenKey {
    const key = this.required(s, id);
    if (isDisabledByMarker(this.token, s, key.label)) throw xksErrors.invalidState(`External key ${id} is disabled`);
    if (!keyUsage(this.token, s, key.handle)[use])
      throw xksErrors.invalidKeyUsage(`External key ${id} does not support ${use.toUpperCase()}`);
    return key;
  }

  /** Runs one token call; PKCS#11 failures become InternalException (the key manager failed), XKS errors pass through. */
  private async run<T>(what: string, fn: (s: Handle) => Promise<T> | T): Promise<T> {
    try {
      return await this.token.withSession(fn);
    } catch (err) {
      if (err instanceof Error && err.name === 'XksError') throw err;
      const mapped = err instanceof VectorsealError ? err : mapPkcs11Error(err, what);
      throw Object.assign(xksErrors.internal(`The external key manager failed: ${mapped.code}`), { cause: mapped });
    }
  }
}
