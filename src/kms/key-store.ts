import type { PrincipalConfig } from './config.js';
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
  /** The key policy document; absent means the default policy (the account delegates to its principals' policies). */
  policy?: string;
  /** Set for multi-region keys: this copy's role and the regions holding the others. */
  multiRegion?: MultiRegionRecord;
}

/** A multi-region key's replication facts, as this region knows them. */
export interface MultiRegionRecord {
  role: 'PRIMARY' | 'REPLICA';
  primaryRegion: string;
  /** Every region holding a replica (the primary's list; a replica keeps what it was told). */
  replicaRegions: string[];
}

export interface AliasRecord {
  name: string;
  targetKeyId: string;
  creationDate: number;
  lastUpdatedDate: number;
}

/** A grant: a principal allowed some operations on one key, until retired or revoked. */
export interface GrantRecord {
  grantId: string;
  keyId: string;
  name?: string;
  granteePrincipal: string;
  retiringPrincipal?: string;
  operations: string[];
  constraints?: { EncryptionContextEquals?: Record<string, string>; EncryptionContextSubset?: Record<string, string> };
  issuingAccount: string;
  creationDate: number;
  /** sha256 of the grant token (see grants.ts); the token itself is never stored. */
  tokenHash: string;
}

export interface KeyStoreState {
  keys: Record<string, KeyRecord>;
  aliases: Record<string, AliasRecord>;
  grants: Record<string, GrantRecord>;
  /**
   * Access keys and policies, when the store holds them (etcd); the file store
   * leaves this empty and the configuration file is the source.
   */
  principals: Record<string, PrincipalConfig>;
}

/** A fresh, empty state. */
export function emptyState(): KeyStoreState {
  return { keys: Object.create(null), aliases: Object.create(null), grants: Object.create(null), principals: Object.create(null) };
}

/**
 * The key service's persistent state. Readers see an immutable snapshot;
 * `mutate` applies a change to a copy, persists it, and only then publishes
 * it, so a failed write never leaves memory and storage disagreeing.
 * Subclasses decide where the state lives (one file, or an etcd cluster).
 */
export abstract class KeyStore {
  /** Unwrapped backing keys, by `${keyId}/${version}`; the service needs them on every crypto call. */
  private readonly material = new Map<string, Buffer>();
  private readonly listeners: (() => void)[] = [];

  protected constructor(protected readonly protector: RootKeyProtector) {}

  /** The current snapshot. Treat as read-only. */
  abstract get snapshot(): Readonly<KeyStoreState>;

  /**
   * Applies `change` to a copy of the state and persists it. `change` may throw
   * to abort (nothing is written) and may return a value for the caller. It
   * may run more than once when another node changed the state concurrently.
   */
  abstract mutate<T>(change: (draft: KeyStoreState) => T | Promise<T>): Promise<T>;

  /**
   * Throws (DependencyTimeoutException) when this node cannot vouch that its
   * snapshot is current; a no-op for a store only this process writes.
   */
  assertFresh(): void {}

  /**
   * Makes sure the snapshot holds every change committed before this call,
   * made through any node; undefined when nothing can be missing (a store only
   * this process writes). Requests call it before answering that a key or
   * alias does not exist, so a key created through one node is found through
   * every other at once instead of after the watch delivers it.
   */
  catchUp(): Promise<void> | undefined {
    return undefined;
  }

  /** Stops background work (watches) and zeroes cached material. */
  async close(): Promise<void> {
    this.clearMaterial();
  }

  /** Calls `listener` after every change to the snapshot, from this node or another. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Subclasses call this after publishing a new snapshot. */
  protected published(): void {
    this.dropStaleMaterial();
    for (const l of this.listeners) l();
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

  /**
   * The backing key of one version when it is already unwrapped, else
   * undefined: the hot path's synchronous look-up, with no promise to await.
   */
  cachedBackingKey(key: KeyRecord, version: number): Buffer | undefined {
    return this.material.get(`${key.keyId}/${version}`);
  }

  /** The plaintext backing key of one version, unwrapped once and kept in memory. */
  async backingKey(key: KeyRecord, version: number): Promise<Buffer | undefined> {
    const id = `${key.keyId}/${version}`;
    const cached = this.material.get(id);
    if (cached !== undefined) return cached;
    const record = key.backing.find((b) => b.version === version);
    if (record === undefined) return undefined;
    const plain = Buffer.from(await this.protector.unwrap(Buffer.from(record.material, 'base64'), materialAad(key.keyId, version)));
    // Another request may have unwrapped it meanwhile; keep one copy.
    const raced = this.material.get(id);
    if (raced !== undefined) {
      plain.fill(0);
      return raced;
    }
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
    const state = this.snapshot;
    for (const [id, m] of this.material) {
      const slash = id.lastIndexOf('/');
      const key = Object.hasOwn(state.keys, id.slice(0, slash)) ? state.keys[id.slice(0, slash)] : undefined;
      const version = Number(id.slice(slash + 1));
      if (key === undefined || !key.backing.some((b) => b.version === version)) {
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
