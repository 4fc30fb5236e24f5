import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CorruptDataError, UnsupportedVersionError } from '../errors.js';
import { writeFileAtomic } from '../storage/fsutil.js';
import type { RootKeyProtector } from './root-key.js';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion' | 'PendingImport';
export type KeyOrigin = 'AWS_KMS' | 'EXTERNAL';

/** One backing key of a KMS key; the material is wrapped by the root key protector. */
export interface BackingKeyRecord {
  version: number;
  /** Epoch ms. */
  createdAt: number;
  /** How this version came to be; absent for the first one. */
  rotationType?: 'AUTOMATIC' | 'ON_DEMAND';
  /** base64 of the root-key-wrapped material. */
  material: string;
}

export interface ImportParametersRecord {
  tokenId: string;
  /** Epoch ms after which the token is refused. */
  validTo: number;
  /** base64 of the root-key-wrapped PKCS#8 DER private key. */
  privateKey: string;
}

export interface KeyRecord {
  keyId: string;
  creationDate: number;
  description: string;
  origin: KeyOrigin;
  state: KeyState;
  tags: { TagKey: string; TagValue: string }[];
  deletionDate?: number;
  pendingWindowInDays?: number;
  rotation: { enabled: boolean; periodDays: number; nextRotation?: number };
  backing: BackingKeyRecord[];
  importParams?: ImportParametersRecord;
  /** For imported keys: a hash that lets a later import prove it is the same material. */
  materialCheck?: string;
  expirationModel?: 'KEY_MATERIAL_EXPIRES' | 'KEY_MATERIAL_DOES_NOT_EXPIRE';
  validTo?: number;
}

export interface AliasRecord {
  name: string;
  targetKeyId: string;
  creationDate: number;
  lastUpdatedDate: number;
}

export interface KeyStoreState {
  keys: Record<string, KeyRecord>;
  aliases: Record<string, AliasRecord>;
}

const STATE_FILE = 'kms-state.json';
const STATE_VERSION = 1;

/**
 * The key service's persistent state: one JSON file holding key metadata,
 * aliases and root-key-wrapped material, replaced atomically on every change.
 * Readers see an immutable snapshot; `mutate` serialises writers, applies the
 * change to a copy, persists it, and only then publishes it, so a failed write
 * never leaves memory and disk disagreeing.
 */
export class KeyStore {
  private state: KeyStoreState;
  private queue: Promise<unknown> = Promise.resolve();
  /** Unwrapped backing keys, by `${keyId}/${version}`; the service needs them on every crypto call. */
  private readonly material = new Map<string, Buffer>();

  private constructor(
    private readonly file: string,
    private readonly protector: RootKeyProtector,
    state: KeyStoreState,
  ) {
    this.state = state;
  }

  /** Loads the state from `dataDir`, or starts empty. */
  static async open(dataDir: string, protector: RootKeyProtector): Promise<KeyStore> {
    const file = join(dataDir, STATE_FILE);
    let state: KeyStoreState = { keys: {}, aliases: {} };
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { version?: number } & Partial<KeyStoreState>;
      if (parsed.version !== STATE_VERSION) {
        throw new UnsupportedVersionError(`key service state ${file} has version ${String(parsed.version)}, expected ${STATE_VERSION}`);
      }
      if (typeof parsed.keys !== 'object' || typeof parsed.aliases !== 'object' || !parsed.keys || !parsed.aliases) {
        throw new CorruptDataError('key service state is malformed', { file, reason: 'header' });
      }
      state = { keys: parsed.keys, aliases: parsed.aliases };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        if (err instanceof SyntaxError) throw new CorruptDataError('key service state is not valid JSON', { file, reason: 'header', cause: err });
        throw err;
      }
    }
    return new KeyStore(file, protector, state);
  }

  /** The current snapshot. Treat as read-only. */
  get snapshot(): Readonly<KeyStoreState> {
    return this.state;
  }

  /**
   * Applies `change` to a copy of the state and persists it. `change` may throw
   * to abort (nothing is written) and may return a value for the caller.
   */
  mutate<T>(change: (draft: KeyStoreState) => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const draft = structuredClone(this.state);
      const result = await change(draft);
      const body = JSON.stringify({ version: STATE_VERSION, ...draft });
      await writeFileAtomic(this.file, Buffer.from(body, 'utf8'));
      this.state = draft;
      this.dropStaleMaterial();
      return result;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Wraps new backing-key material for storage in a record. */
  async wrapMaterial(keyId: string, version: number, material: Uint8Array): Promise<string> {
    return Buffer.from(await this.protector.wrap(material, materialAad(keyId, version))).toString('base64');
  }

  /** Wraps an import private key for storage in a record. */
  async wrapImportKey(keyId: string, tokenId: string, der: Uint8Array): Promise<string> {
    return Buffer.from(await this.protector.wrap(der, importAad(keyId, tokenId))).toString('base64');
  }

  async unwrapImportKey(keyId: string, params: ImportParametersRecord): Promise<Buffer> {
    return Buffer.from(await this.protector.unwrap(Buffer.from(params.privateKey, 'base64'), importAad(keyId, params.tokenId)));
  }

  /** The plaintext backing key of one version, unwrapped once and kept in memory. */
  async backingKey(key: KeyRecord, version: number): Promise<Buffer | undefined> {
    const id = `${key.keyId}/${version}`;
    const cached = this.material.get(id);
    if (cached !== undefined) return cached;
    const record = key.backing.find((b) => b.version === version);
    if (record === undefined) return undefined;
    const plain = Buffer.from(await this.protector.unwrap(Buffer.from(record.material, 'base64'), materialAad(key.keyId, version)));
    this.material.set(id, plain);
    return plain;
  }

  /** Zeroes every cached backing key (on close). */
  clearMaterial(): void {
    for (const m of this.material.values()) m.fill(0);
    this.material.clear();
  }

  // Material of deleted keys (or expired imports) must not outlive its record in memory either.
  private dropStaleMaterial(): void {
    for (const [id, m] of this.material) {
      const [keyId, version] = id.split('/');
      const key = this.state.keys[keyId!];
      if (key === undefined || !key.backing.some((b) => b.version === Number(version))) {
        m.fill(0);
        this.material.delete(id);
      }
    }
  }
}

function materialAad(keyId: string, version: number): Buffer {
  return Buffer.from(`vectorseal/kms/backing-key/v1\0${keyId}\0${version}`, 'utf8');
}

function importAad(keyId: string, tokenId: string): Buffer {
  return Buffer.from(`vectorseal/kms/import-key/v1\0${keyId}\0${tokenId}`, 'utf8');
}
