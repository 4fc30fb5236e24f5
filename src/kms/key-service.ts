import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  privateDecrypt,
  randomBytes,
  randomUUID,
  constants as cryptoConstants,
} from 'node:crypto';
import { promisify } from 'node:util';
import type { Clock } from './clock.js';
import { DAY_MS } from './clock.js';
import { openCiphertext, parseCiphertextHeader, sealCiphertext } from './ciphertext.js';
import { poolRandomBytes } from './random-pool.js';
import { snapshotIndex } from './snapshot-index.js';
import { KmsException, kmsErrors } from './errors.js';
import { decodeImportToken, encodeImportToken, IMPORT_TOKEN_TTL_MS } from './import-token.js';
import { checkGrantTokens, grantForToken, GRANT_OPERATIONS, newGrantToken } from './grants.js';
import { defaultKeyPolicy, parseKeyPolicy } from './key-policy.js';
import type { Peers } from './peers.js';
import type { GrantRecord, KeyRecord, KeyStore, KeyStoreState } from './key-store.js';
import type { PolicyRequest } from './policy.js';
import { b64, epochSeconds, optContext, optEnum, optInt, optString, reqBlob, reqString, withJson, type WireInput } from './wire.js';

const generateKeyPairAsync = promisify(generateKeyPair);

const BACKING_KEY_BYTES = 32;
const MAX_PLAINTEXT = 4096;
const MAX_CIPHERTEXT = 6144;
/** Key ids: UUIDs, and `mrk-` plus 32 hex digits for multi-region keys. */
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
const MAX_TAGS = 50;
const ALIAS_NAME = /^alias\/[a-zA-Z0-9/_-]{1,250}$/;

/** A policy check plus the facts the audit line records about it. */
export interface RequestTarget extends PolicyRequest {
  /** The resolved key's ARN, when the reference resolved. */
  keyArn?: string;
  /** The resolved key's id. */
  keyId?: string;
}

/** The authenticated caller, as operations that depend on who asks (grants, the policy lockout check) see it. */
export interface ServiceCaller {
  arn: string;
  /** Whether the caller may perform `operation` on `key` (used with a key carrying a proposed policy). */
  may(operation: string, key: KeyRecord): boolean;
}

/** A handler answers synchronously when it needs nothing asynchronous (the crypto operations, with their backing key cached). */
type Handler = (input: WireInput, caller: ServiceCaller) => WireInput | Promise<WireInput>;

/**
 * When a key next needs the sweep: its deletion date when pending deletion,
 * its next rotation when enabled with automatic rotation (a replica's
 * material changes only by its primary's push, never by its own rotation),
 * the expiry of imported material; the earliest of those, Infinity if none.
 */
function dueAt(k: KeyRecord): number {
  let at = Infinity;
  if (k.state === 'PendingDeletion' && k.deletionDate !== undefined) at = Math.min(at, k.deletionDate);
  if (k.state === 'Enabled' && k.multiRegion?.role !== 'REPLICA' && k.rotation.enabled && k.rotation.nextRotation !== undefined) {
    at = Math.min(at, k.rotation.nextRotation);
  }
  if (k.validTo !== undefined && k.backing.length > 0) at = Math.min(at, k.validTo);
  return at;
}

/**
 * The KMS operations over the key store, in wire shapes (JSON members, base64
 * blobs, epoch-second timestamps). Knows nothing of HTTP, signatures or
 * policy; `targets` tells the caller what a request touches so it can
 * authorise and audit it first.
 */
export class KeyService {
  private readonly handlers: Record<string, Handler>;

  constructor(
    private readonly store: KeyStore,
    private readonly region: string,
    private readonly accountId: string,
    private readonly clock: Clock,
    private readonly peers?: Peers,
  ) {
    this.handlers = {
      CreateKey: (i, c) => this.createKey(i, c),
      DescribeKey: (i) => this.describeKey(i),
      ListKeys: (i) => this.listKeys(i),
      CreateAlias: (i) => this.createAlias(i),
      ListAliases: (i) => this.listAliases(i),
      GenerateDataKey: (i) => this.generateDataKey(i, true),
      GenerateDataKeyWithoutPlaintext: (i) => this.generateDataKey(i, false),
      Encrypt: (i) => this.encrypt(i),
      Decrypt: (i) => this.decrypt(i),
      ReEncrypt: (i) => this.reEncrypt(i),
      EnableKey: (i) => this.setEnabled(i, true),
      DisableKey: (i) => this.setEnabled(i, false),
      EnableKeyRotation: (i) => this.enableKeyRotation(i),
      DisableKeyRotation: (i) => this.disableKeyRotation(i),
      GetKeyRotationStatus: (i) => this.getKeyRotationStatus(i),
      RotateKeyOnDemand: (i) => this.rotateKeyOnDemand(i),
      ListKeyRotations: (i) => this.listKeyRotations(i),
      ScheduleKeyDeletion: (i) => this.scheduleKeyDeletion(i),
      CancelKeyDeletion: (i) => this.cancelKeyDeletion(i),
      GetParametersForImport: (i) => this.getParametersForImport(i),
      ImportKeyMaterial: (i) => this.importKeyMaterial(i),
      DeleteImportedKeyMaterial: (i) => this.deleteImportedKeyMaterial(i),
      GenerateRandom: (i) => this.generateRandom(i),
      TagResource: (i) => this.tagResource(i),
      UntagResource: (i) => this.untagResource(i),
      ListResourceTags: (i) => this.listResourceTags(i),
      UpdateAlias: (i) => this.updateAlias(i),
      DeleteAlias: (i) => this.deleteAlias(i),
      UpdateKeyDescription: (i) => this.updateKeyDescription(i),
      GetKeyPolicy: (i) => this.getKeyPolicy(i),
      PutKeyPolicy: (i, c) => this.putKeyPolicy(i, c),
      ListKeyPolicies: (i) => this.listKeyPolicies(i),
      CreateGrant: (i) => this.createGrant(i),
      ListGrants: (i) => this.listGrants(i),
      RetireGrant: (i, c) => this.retireGrant(i, c),
      RevokeGrant: (i) => this.revokeGrant(i),
      ReplicateKey: (i) => this.replicateKey(i),
      UpdatePrimaryRegion: (i) => this.updatePrimaryRegion(i),
      [SYNC_REPLICA]: (i) => this.syncReplica(i),
    };
  }

  /** Whether the service implements an operation. */
  supports(operation: string): boolean {
    return Object.hasOwn(this.handlers, operation);
  }

  /** Whether an operation is a KMS operation this service deliberately does not implement. */
  static isUnsupported(operation: string): boolean {
    return UNSUPPORTED.has(operation);
  }

  /** Runs one operation. Throws (or rejects with) KmsException for every client-visible failure. */
  async execute(operation: string, input: WireInput, caller: ServiceCaller = ANONYMOUS): Promise<WireInput> {
    return this.run(operation, input, caller);
  }

  /**
   * execute() without the promise when the operation completes synchronously
   * (GenerateDataKey, Encrypt, Decrypt with their backing key already
   * unwrapped): the request path then allocates no promise per request. Throws
   * synchronously or returns a promise that rejects, as the handler does.
   */
  run(operation: string, input: WireInput, caller: ServiceCaller = ANONYMOUS): WireInput | Promise<WireInput> {
    const handler = Object.hasOwn(this.handlers, operation) ? this.handlers[operation] : undefined;
    if (handler === undefined) throw kmsErrors.unknownOperation(`Operation ${operation} is not supported`);
    if (GRANT_TOKEN_OPERATIONS.has(operation)) checkGrantTokens(this.store.snapshot, input.GrantTokens);
    return handler(input, caller);
  }

  /**
   * What a request acts on, for policy and audit. ReEncrypt yields two targets
   * (`ReEncryptFrom` on the source key, `ReEncryptTo` on the destination).
   * Never throws: references that do not resolve are reported as given.
   */
  targets(operation: string, input: WireInput): RequestTarget[] {
    const ctx = (name: string): Record<string, string> | undefined => {
      try {
        return input[name] === undefined ? {} : optContext(input, name);
      } catch {
        return undefined;
      }
    };
    const ref = (name: string): unknown => input[name];
    const blobKey = (): string | undefined => {
      try {
        return parseCiphertextHeader(Buffer.from(String(input.CiphertextBlob), 'base64')).keyId;
      } catch {
        return undefined;
      }
    };
    switch (operation) {
      case 'CreateKey':
      case 'ListKeys':
      case 'ListAliases':
      case 'GenerateRandom':
        return [{ operation }];
      case 'CreateAlias':
        return [this.target(operation, ref('TargetKeyId'))];
      case 'UpdateAlias':
        // AWS asks for permission on the alias's current key and on the new one.
        return [this.target(operation, ref('AliasName')), this.target(operation, ref('TargetKeyId'))];
      case 'DeleteAlias':
        return [this.target(operation, ref('AliasName'))];
      case 'RetireGrant':
        // Decided by the grant itself (its retiring principal or grantee), in the handler.
        return [];
      case 'Encrypt':
      case 'GenerateDataKey':
      case 'GenerateDataKeyWithoutPlaintext':
        return [this.target(operation, ref('KeyId'), ctx('EncryptionContext'))];
      case 'Decrypt':
        return [this.target(operation, ref('KeyId') ?? blobKey(), ctx('EncryptionContext'))];
      case 'ReEncrypt':
        return [
          this.target('ReEncryptFrom', ref('SourceKeyId') ?? blobKey(), ctx('SourceEncryptionContext')),
          this.target('ReEncryptTo', ref('DestinationKeyId'), ctx('DestinationEncryptionContext')),
        ];
      default:
        return [this.target(operation, ref('KeyId'))];
    }
  }

  /** Whether anything (a deletion, a rotation, an import's expiry) is due at `now`; the request path awaits sweep() only then. */
  sweepDue(now = this.clock.now()): boolean {
    return now >= snapshotIndex(this.store.snapshot, dueAt).nextDue;
  }

  /**
   * Completes what time has made due: deletions whose window ended, automatic
   * rotations, imported material past its ValidTo. Cheap when nothing is due.
   */
  async sweep(): Promise<void> {
    const now = this.clock.now();
    // Nothing falls due before the snapshot's earliest scheduled time: the common case costs one comparison.
    if (!this.sweepDue(now)) return;
    const due = (k: KeyRecord): boolean => dueAt(k) <= now;
    const rotated: string[] = [];
    await this.store.mutate(async (draft) => {
      rotated.length = 0;
      for (const key of Object.values(draft.keys)) {
        if (!due(key)) continue;
        if (key.state === 'PendingDeletion') {
          deleteKey(draft, key.keyId);
        } else if (key.validTo !== undefined && key.validTo <= now && key.backing.length > 0) {
          // Expired imported material is deleted; the key waits for a re-import of the same material.
          key.backing = [];
          delete key.validTo;
          if (key.state === 'Enabled' || key.state === 'Disabled') key.state = 'PendingImport';
        } else {
          await this.addBackingKey(key, 'AUTOMATIC', now);
          key.rotation.nextRotation = now + key.rotation.periodDays * DAY_MS;
          if (key.multiRegion?.role === 'PRIMARY') rotated.push(key.keyId);
        }
      }
    });
    // Automatic rotation of a multi-region primary reaches its replicas as on-demand rotation does.
    for (const id of rotated) {
      const key = this.store.snapshot.keys[id];
      if (key !== undefined) await this.pushToReplicas(key);
    }
  }

  // ---- references ----------------------------------------------------------

  private readonly arns = new Map<string, { arn: string; json: string }>();

  private arnOf(keyId: string): { arn: string; json: string } {
    let entry = this.arns.get(keyId);
    if (entry === undefined) {
      const arn = `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`;
      entry = { arn, json: JSON.stringify(arn) };
      if (this.arns.size >= 8192) this.arns.clear();
      this.arns.set(keyId, entry);
    }
    return entry;
  }

  /** The ARN of a key id (kept per id, with its JSON text: every request names its key's ARN several times). */
  keyArn(keyId: string): string {
    return this.arnOf(keyId).arn;
  }

  private aliasArn(name: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:${name}`;
  }

  /** Finds a key by id, key ARN, alias name or alias ARN. */
  private resolve(ref: string, state: Readonly<KeyStoreState> = this.store.snapshot): KeyRecord | undefined {
    const prefix = `arn:aws:kms:${this.region}:${this.accountId}:`;
    let local = ref;
    if (ref.startsWith('arn:')) {
      if (!ref.startsWith(prefix)) return undefined;
      local = ref.slice(prefix.length);
    }
    if (local.startsWith('key/')) local = local.slice(4);
    else if (ref.startsWith('arn:') && !local.startsWith('alias/')) return undefined;
    if (local.startsWith('alias/')) {
      const alias = state.aliases[local];
      return alias === undefined ? undefined : state.keys[alias.targetKeyId];
    }
    return UUID.test(local) ? state.keys[local] : undefined;
  }

  private requireKey(input: WireInput, name = 'KeyId', state?: Readonly<KeyStoreState>): KeyRecord {
    const ref = reqString(input, name);
    const key = this.resolve(ref, state);
    if (key === undefined) throw kmsErrors.notFound(`Key '${ref}' does not exist`);
    return key;
  }

  private target(operation: string, ref: unknown, encryptionContext?: Record<string, string>): RequestTarget {
    const out: RequestTarget = { operation, keyNames: [] };
    if (encryptionContext !== undefined) out.encryptionContext = encryptionContext;
    if (typeof ref !== 'string') return out;
    const key = this.resolve(ref);
    if (key === undefined) {
      out.keyNames = [ref];
      return out;
    }
    const arn = this.keyArn(key.keyId);
    out.keyNames = this.namesOf(key.keyId, arn);
    out.keyArn = arn;
    out.keyId = key.keyId;
    return out;
  }

  /** Names of a key per snapshot (aliases change only with the snapshot); shared, never modified. */
  private readonly names = new WeakMap<object, Map<string, string[]>>();

  /** Every name a key goes by (id, ARN, its aliases' names and ARNs), for policy matching. */
  private namesOf(keyId: string, arn: string): string[] {
    const snapshot = this.store.snapshot;
    let byKey = this.names.get(snapshot);
    if (byKey === undefined) {
      byKey = new Map();
      this.names.set(snapshot, byKey);
    }
    let names = byKey.get(keyId);
    if (names === undefined) {
      names = [keyId, arn];
      for (const alias of snapshotIndex(snapshot, dueAt).aliasesOf.get(keyId) ?? []) names.push(alias, this.aliasArn(alias));
      byKey.set(keyId, names);
    }
    return names;
  }

  // ---- key metadata --------------------------------------------------------

  private metadata(key: KeyRecord): WireInput {
    const m: WireInput = {
      AWSAccountId: this.accountId,
      KeyId: key.keyId,
      Arn: this.keyArn(key.keyId),
      CreationDate: epochSeconds(key.creationDate),
      Enabled: key.state === 'Enabled',
      Description: key.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: key.state,
      Origin: key.origin,
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: key.multiRegion !== undefined,
    };
    if (key.multiRegion !== undefined) {
      const mr = key.multiRegion;
      const arnIn = (region: string) => `arn:aws:kms:${region}:${this.accountId}:key/${key.keyId}`;
      m.MultiRegionConfiguration = {
        MultiRegionKeyType: mr.role,
        PrimaryKey: { Arn: arnIn(mr.primaryRegion), Region: mr.primaryRegion },
        ReplicaKeys: mr.replicaRegions.map((r) => ({ Arn: arnIn(r), Region: r })),
      };
    }
    if (key.deletionDate !== undefined) m.DeletionDate = epochSeconds(key.deletionDate);
    if (key.pendingWindowInDays !== undefined) m.PendingDeletionWindowInDays = key.pendingWindowInDays;
    if (key.origin === 'EXTERNAL' && key.backing.length > 0) {
      m.ExpirationModel = key.expirationModel ?? 'KEY_MATERIAL_DOES_NOT_EXPIRE';
      if (key.validTo !== undefined) m.ValidTo = epochSeconds(key.validTo);
    }
    return m;
  }

  private async createKey(input: WireInput, caller: ServiceCaller): Promise<WireInput> {
    const description = input.Description === undefined ? '' : String(optString(input, 'Description', 8192) ?? '');
    const usage = optEnum(input, 'KeyUsage', ['SIGN_VERIFY', 'ENCRYPT_DECRYPT', 'GENERATE_VERIFY_MAC', 'KEY_AGREEMENT'] as const);
    const spec = optString(input, 'KeySpec') ?? optString(input, 'CustomerMasterKeySpec') ?? 'SYMMETRIC_DEFAULT';
    const origin = optEnum(input, 'Origin', ['AWS_KMS', 'EXTERNAL', 'AWS_CLOUDHSM', 'EXTERNAL_KEY_STORE'] as const) ?? 'AWS_KMS';
    if ((usage !== undefined && usage !== 'ENCRYPT_DECRYPT') || spec !== 'SYMMETRIC_DEFAULT') {
      throw kmsErrors.unsupportedOperation('Only SYMMETRIC_DEFAULT keys for ENCRYPT_DECRYPT are supported');
    }
    if (origin !== 'AWS_KMS' && origin !== 'EXTERNAL') throw kmsErrors.unsupportedOperation(`Origin ${origin} is not supported`);
    const tags = readTags(input);
    if (input.CustomKeyStoreId !== undefined || input.XksKeyId !== undefined)
      throw kmsErrors.unsupportedOperation('Custom key stores are not supported');
    const multiRegion = optBool(input, 'MultiRegion') ?? false;
    const policy = input.Policy === undefined ? undefined : reqString(input, 'Policy', 131072);
    if (policy !== undefined) parseKeyPolicy(policy);
    const now = this.clock.now();
    const key: KeyRecord = {
      keyId: multiRegion ? `mrk-${randomBytes(16).toString('hex')}` : randomUUID(),
      creationDate: now,
      description,
      origin,
      state: origin === 'EXTERNAL' ? 'PendingImport' : 'Enabled',
      tags,
      rotation: { enabled: false, periodDays: 365 },
      backing: [],
    };
    if (policy !== undefined) key.policy = policy;
    if (multiRegion) key.multiRegion = { role: 'PRIMARY', primaryRegion: this.region, replicaRegions: [] };
    if (policy !== undefined && input.BypassPolicyLockoutSafetyCheck !== true) this.lockoutCheck(key, caller);
    if (origin === 'AWS_KMS') await this.addBackingKey(key, undefined, now);
    await this.store.mutate((draft) => {
      draft.keys[key.keyId] = key;
    });
    return { KeyMetadata: this.metadata(key) };
  }

  private async describeKey(input: WireInput): Promise<WireInput> {
    return { KeyMetadata: this.metadata(this.requireKey(input)) };
  }

  private async listKeys(input: WireInput): Promise<WireInput> {
    const limit = optInt(input, 'Limit', 1, 1000) ?? 100;
    const marker = optString(input, 'Marker', 1024);
    if (marker !== undefined && !UUID.test(marker)) throw kmsErrors.invalidMarker('Marker is not valid');
    const ids = Object.keys(this.store.snapshot.keys)
      .sort()
      .filter((id) => marker === undefined || id > marker);
    const page = ids.slice(0, limit);
    const truncated = ids.length > limit;
    const out: WireInput = { Keys: page.map((id) => ({ KeyId: id, KeyArn: this.keyArn(id) })), Truncated: truncated };
    if (truncated) out.NextMarker = page[page.length - 1];
    return out;
  }

  private async createAlias(input: WireInput): Promise<WireInput> {
    const name = reqString(input, 'AliasName', 256);
    if (!ALIAS_NAME.test(name) || name.startsWith('alias/aws/')) {
      throw kmsErrors.invalidAliasName(`Alias name must start with "alias/" (not "alias/aws/") and use [a-zA-Z0-9/_-]`);
    }
    const targetRef = reqString(input, 'TargetKeyId');
    if (targetRef.startsWith('alias/') || targetRef.includes(':alias/')) {
      throw kmsErrors.validation('TargetKeyId must be a key id or key ARN, not an alias');
    }
    await this.store.mutate((draft) => {
      if (draft.aliases[name] !== undefined) throw kmsErrors.alreadyExists(`An alias with the name ${this.aliasArn(name)} already exists`);
      const key = this.resolve(targetRef, draft);
      if (key === undefined) throw kmsErrors.notFound(`Key '${targetRef}' does not exist`);
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      const now = this.clock.now();
      draft.aliases[name] = { name, targetKeyId: key.keyId, creationDate: now, lastUpdatedDate: now };
    });
    return {};
  }

  private async listAliases(input: WireInput): Promise<WireInput> {
    const limit = optInt(input, 'Limit', 1, 1000) ?? 100;
    const marker = optString(input, 'Marker', 1024);
    const keyFilter = input.KeyId === undefined ? undefined : this.requireKey(input).keyId;
    if (marker !== undefined && !ALIAS_NAME.test(marker)) throw kmsErrors.invalidMarker('Marker is not valid');
    const aliases = Object.values(this.store.snapshot.aliases)
      .filter((a) => keyFilter === undefined || a.targetKeyId === keyFilter)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .filter((a) => marker === undefined || a.name > marker);
    const page = aliases.slice(0, limit);
    const truncated = aliases.length > limit;
    const out: WireInput = {
      Aliases: page.map((a) => ({
        AliasName: a.name,
        AliasArn: this.aliasArn(a.name),
        TargetKeyId: a.targetKeyId,
        CreationDate: epochSeconds(a.creationDate),
        LastUpdatedDate: epochSeconds(a.lastUpdatedDate),
      })),
      Truncated: truncated,
    };
    if (truncated) out.NextMarker = page[page.length - 1]!.name;
    return out;
  }

  // ---- cryptographic operations -------------------------------------------

  private generateDataKey(input: WireInput, withPlaintext: boolean): WireInput | Promise<WireInput> {
    const key = this.requireKey(input);
    const context = optContext(input, 'EncryptionContext');
    const bytes = optInt(input, 'NumberOfBytes', 1, 1024);
    const spec = optEnum(input, 'KeySpec', ['AES_256', 'AES_128'] as const);
    if ((bytes === undefined) === (spec === undefined)) {
      throw kmsErrors.validation('Exactly one of NumberOfBytes and KeySpec is required');
    }
    this.requireUsable(key);
    const answer = (material: Buffer, version: number): WireInput => {
      const plaintext = poolRandomBytes(bytes ?? (spec === 'AES_128' ? 16 : 32));
      try {
        const blob = b64(sealCiphertext(material, { keyId: key.keyId, backingVersion: version }, plaintext, context));
        const { arn, json } = this.arnOf(key.keyId);
        const out: WireInput = { CiphertextBlob: blob, KeyId: arn };
        // Base64 and the ARN's JSON text: nothing to escape, so the answer's text is written here (wire.ts WIRE_JSON).
        let text = `{"CiphertextBlob":"${blob}","KeyId":${json}`;
        if (withPlaintext) {
          out.Plaintext = b64(plaintext);
          text += `,"Plaintext":"${out.Plaintext}"`;
        }
        return withJson(out, `${text}}`);
      } finally {
        plaintext.fill(0);
      }
    };
    return this.withNewestMaterial(key, answer);
  }

  private encrypt(input: WireInput): WireInput | Promise<WireInput> {
    const key = this.requireKey(input);
    const plaintext = reqBlob(input, 'Plaintext', MAX_PLAINTEXT);
    const context = optContext(input, 'EncryptionContext');
    try {
      checkAlgorithm(input, 'EncryptionAlgorithm');
      this.requireUsable(key);
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
    const answer = (material: Buffer, version: number): WireInput => {
      const blob = b64(sealCiphertext(material, { keyId: key.keyId, backingVersion: version }, plaintext, context));
      const { arn, json } = this.arnOf(key.keyId);
      const out = { CiphertextBlob: blob, KeyId: arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      return withJson(out, `{"CiphertextBlob":"${blob}","KeyId":${json},"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`);
    };
    const zero = (): void => void plaintext.fill(0);
    try {
      const out = this.withNewestMaterial(key, answer);
      if (out instanceof Promise) return out.finally(zero);
      zero();
      return out;
    } catch (err) {
      zero();
      throw err;
    }
  }

  private decrypt(input: WireInput): WireInput | Promise<WireInput> {
    const answer = ({ key, plaintext }: { key: KeyRecord; plaintext: Buffer }): WireInput => {
      try {
        const { arn, json } = this.arnOf(key.keyId);
        const text = b64(plaintext);
        const out = { KeyId: arn, Plaintext: text, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
        return withJson(out, `{"KeyId":${json},"Plaintext":"${text}","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`);
      } finally {
        plaintext.fill(0);
      }
    };
    const opened = this.open(input, 'KeyId', 'EncryptionContext', 'EncryptionAlgorithm');
    return opened instanceof Promise ? opened.then(answer) : answer(opened);
  }

  private async reEncrypt(input: WireInput): Promise<WireInput> {
    const destination = this.requireKey(input, 'DestinationKeyId');
    const destinationContext = optContext(input, 'DestinationEncryptionContext');
    checkAlgorithm(input, 'DestinationEncryptionAlgorithm');
    const { key: source, plaintext } = await this.open(input, 'SourceKeyId', 'SourceEncryptionContext', 'SourceEncryptionAlgorithm');
    try {
      this.requireUsable(destination);
      const blob = await this.seal(destination, plaintext, destinationContext);
      return {
        CiphertextBlob: b64(blob),
        SourceKeyId: this.keyArn(source.keyId),
        KeyId: this.keyArn(destination.keyId),
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      };
    } finally {
      plaintext.fill(0);
    }
  }

  /** Decrypts a request's CiphertextBlob; the blob names its key, and a given key id must agree. */
  private open(
    input: WireInput,
    keyField: string,
    contextField: string,
    algorithmField: string,
  ): { key: KeyRecord; plaintext: Buffer } | Promise<{ key: KeyRecord; plaintext: Buffer }> {
    const blob = reqBlob(input, 'CiphertextBlob', MAX_CIPHERTEXT);
    const context = optContext(input, contextField);
    checkAlgorithm(input, algorithmField);
    const header = parseCiphertextHeader(blob);
    const named = input[keyField] === undefined ? undefined : this.requireKey(input, keyField);
    const key = this.store.snapshot.keys[header.keyId];
    if (named !== undefined && named.keyId !== header.keyId) {
      throw kmsErrors.incorrectKey('The key ID in the request does not identify the KMS key that encrypted the ciphertext');
    }
    if (key === undefined) throw kmsErrors.notFound(`Key '${this.keyArn(header.keyId)}' does not exist`);
    this.requireUsable(key);
    const opened = (material: Buffer | undefined): { key: KeyRecord; plaintext: Buffer } => {
      if (material === undefined) throw kmsErrors.invalidCiphertext('The ciphertext refers to key material that does not exist');
      return { key, plaintext: openCiphertext(material, blob, context) };
    };
    // The backing key is unwrapped once per version and kept: the common case needs no promise.
    const cached = this.store.cachedBackingKey(key, header.backingVersion);
    return cached !== undefined ? opened(cached) : this.store.backingKey(key, header.backingVersion).then(opened);
  }

  /** Runs `use` with the newest backing key of `key` (synchronously when it is already unwrapped). */
  private withNewestMaterial<T>(key: KeyRecord, use: (material: Buffer, version: number) => T): T | Promise<T> {
    const newest = key.backing[key.backing.length - 1];
    if (newest === undefined) throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} has no key material.`);
    const cached = this.store.cachedBackingKey(key, newest.version);
    if (cached !== undefined) return use(cached, newest.version);
    return this.store.backingKey(key, newest.version).then((material) => {
      if (material === undefined) throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} has no key material.`);
      return use(material, newest.version);
    });
  }

  private async seal(key: KeyRecord, plaintext: Uint8Array, context: Record<string, string>): Promise<Buffer> {
    return this.withNewestMaterial(key, (material, version) =>
      sealCiphertext(material, { keyId: key.keyId, backingVersion: version }, plaintext, context),
    );
  }

  // ---- key state -----------------------------------------------------------

  /** Refuses keys that cannot be used for cryptography, with the exception AWS uses for each state. */
  private requireUsable(key: KeyRecord): void {
    if (key.state === 'Enabled') return;
    const arn = this.keyArn(key.keyId);
    if (key.state === 'Disabled') throw kmsErrors.disabled(`${arn} is disabled.`);
    this.requireNotPending(key);
    throw kmsErrors.invalidState(`${arn} is ${key.state}.`);
  }

  private requireNotPending(key: KeyRecord): void {
    const arn = this.keyArn(key.keyId);
    if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${arn} is pending deletion.`);
    if (key.state === 'PendingImport') throw kmsErrors.invalidState(`${arn} is pending import.`);
  }

  /** Resolves the request's key inside a mutation, so the change applies to the latest state. */
  private async change(input: WireInput, apply: (key: KeyRecord) => void | Promise<void>): Promise<KeyRecord> {
    return this.store.mutate(async (draft) => {
      const key = this.requireKey(input, 'KeyId', draft);
      await apply(key);
      return key;
    });
  }

  private async setEnabled(input: WireInput, enabled: boolean): Promise<WireInput> {
    await this.change(input, (key) => {
      this.requireNotPending(key);
      key.state = enabled ? 'Enabled' : 'Disabled';
    });
    return {};
  }

  private async scheduleKeyDeletion(input: WireInput): Promise<WireInput> {
    const days = input.PendingWindowInDays === undefined ? 30 : optInt(input, 'PendingWindowInDays', 7, 30)!;
    const key = await this.change(input, (k) => {
      if (k.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(k.keyId)} is pending deletion.`);
      k.state = 'PendingDeletion';
      k.deletionDate = this.clock.now() + days * DAY_MS;
      k.pendingWindowInDays = days;
    });
    return {
      KeyId: this.keyArn(key.keyId),
      DeletionDate: epochSeconds(key.deletionDate!),
      KeyState: 'PendingDeletion',
      PendingWindowInDays: days,
    };
  }

  private async cancelKeyDeletion(input: WireInput): Promise<WireInput> {
    const key = await this.change(input, (k) => {
      if (k.state !== 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(k.keyId)} is not pending deletion.`);
      // AWS returns a cancelled key disabled, or waiting for material if it never had any.
      k.state = k.backing.length > 0 ? 'Disabled' : 'PendingImport';
      delete k.deletionDate;
      delete k.pendingWindowInDays;
    });
    return { KeyId: this.keyArn(key.keyId) };
  }

  // ---- rotation ------------------------------------------------------------

  private rotationGate(key: KeyRecord): void {
    if (key.multiRegion?.role === 'REPLICA') {
      throw kmsErrors.unsupportedOperation(
        `${this.keyArn(key.keyId)} is a multi-region replica; rotation is managed on the primary in ${key.multiRegion.primaryRegion}.`,
      );
    }
    if (key.origin !== 'AWS_KMS')
      throw kmsErrors.unsupportedOperation(`${this.keyArn(key.keyId)} has imported key material; rotate it by creating a new key.`);
    if (key.state === 'Disabled') throw kmsErrors.disabled(`${this.keyArn(key.keyId)} is disabled.`);
    this.requireNotPending(key);
  }

  private async enableKeyRotation(input: WireInput): Promise<WireInput> {
    const period = optInt(input, 'RotationPeriodInDays', 90, 2560) ?? 365;
    await this.change(input, (key) => {
      this.rotationGate(key);
      key.rotation = { enabled: true, periodDays: period, nextRotation: this.clock.now() + period * DAY_MS };
    });
    return {};
  }

  private async disableKeyRotation(input: WireInput): Promise<WireInput> {
    await this.change(input, (key) => {
      this.rotationGate(key);
      key.rotation = { enabled: false, periodDays: key.rotation.periodDays };
    });
    return {};
  }

  private async getKeyRotationStatus(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const enabled = key.rotation.enabled && key.state !== 'PendingDeletion';
    const out: WireInput = { KeyRotationEnabled: enabled, KeyId: this.keyArn(key.keyId) };
    if (enabled) {
      out.RotationPeriodInDays = key.rotation.periodDays;
      if (key.rotation.nextRotation !== undefined) out.NextRotationDate = epochSeconds(key.rotation.nextRotation);
    }
    return out;
  }

  private async rotateKeyOnDemand(input: WireInput): Promise<WireInput> {
    const key = await this.change(input, async (k) => {
      this.rotationGate(k);
      await this.addBackingKey(k, 'ON_DEMAND', this.clock.now());
    });
    // A multi-region key's material is shared: its replicas get the new version too.
    if (key.multiRegion?.role === 'PRIMARY') await this.pushToReplicas(key);
    return { KeyId: key.keyId };
  }

  private async listKeyRotations(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const limit = optInt(input, 'Limit', 1, 1000) ?? 100;
    const marker = optString(input, 'Marker', 1024);
    if (marker !== undefined && !/^\d{1,10}$/.test(marker)) throw kmsErrors.invalidMarker('Marker is not valid');
    const rotations = key.backing.filter((b) => b.rotationType !== undefined && (marker === undefined || b.version > Number(marker)));
    const page = rotations.slice(0, limit);
    const truncated = rotations.length > limit;
    const out: WireInput = {
      Rotations: page.map((b) => ({ KeyId: key.keyId, RotationDate: epochSeconds(b.createdAt), RotationType: b.rotationType })),
      Truncated: truncated,
    };
    if (truncated) out.NextMarker = String(page[page.length - 1]!.version);
    return out;
  }

  /** Adds a fresh backing key; earlier ones stay so their ciphertexts still decrypt. */
  private async addBackingKey(key: KeyRecord, rotationType: 'AUTOMATIC' | 'ON_DEMAND' | undefined, now: number): Promise<void> {
    const version = (key.backing[key.backing.length - 1]?.version ?? 0) + 1;
    const material = randomBytes(BACKING_KEY_BYTES);
    try {
      const wrapped = await this.store.wrapMaterial(key.keyId, version, material);
      key.backing.push(
        rotationType === undefined
          ? { version, createdAt: now, material: wrapped }
          : { version, createdAt: now, rotationType, material: wrapped },
      );
    } finally {
      material.fill(0);
    }
  }

  // ---- tags, aliases, descriptions -----------------------------------------

  private async generateRandom(input: WireInput): Promise<WireInput> {
    if (input.CustomKeyStoreId !== undefined) throw kmsErrors.unsupportedOperation('Custom key stores are not supported');
    if (input.Recipient !== undefined) throw kmsErrors.unsupportedOperation('Nitro Enclaves attestation (Recipient) is not supported');
    const n = optInt(input, 'NumberOfBytes', 1, 1024);
    if (n === undefined) throw kmsErrors.validation('NumberOfBytes is required');
    const bytes = randomBytes(n);
    try {
      return { Plaintext: b64(bytes) };
    } finally {
      bytes.fill(0);
    }
  }

  private async tagResource(input: WireInput): Promise<WireInput> {
    const tags = readTags(input);
    if (tags.length === 0) throw kmsErrors.validation('Tags expected at least one tag');
    await this.change(input, (key) => {
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      const merged = new Map(key.tags.map((t) => [t.TagKey, t.TagValue]));
      for (const t of tags) merged.set(t.TagKey, t.TagValue);
      if (merged.size > MAX_TAGS) throw kmsErrors.tag(`A key can have at most ${MAX_TAGS} tags`);
      key.tags = [...merged].map(([TagKey, TagValue]) => ({ TagKey, TagValue }));
    });
    return {};
  }

  private async untagResource(input: WireInput): Promise<WireInput> {
    const names = new Set(readTagKeys(input));
    await this.change(input, (key) => {
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      key.tags = key.tags.filter((t) => !names.has(t.TagKey));
    });
    return {};
  }

  private async listResourceTags(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const limit = optInt(input, 'Limit', 1, 50) ?? 50;
    const marker = optString(input, 'Marker', 1024);
    const sorted = [...key.tags].sort((a, b) => (a.TagKey < b.TagKey ? -1 : a.TagKey > b.TagKey ? 1 : 0));
    const rest = marker === undefined ? sorted : sorted.filter((t) => t.TagKey > marker);
    const page = rest.slice(0, limit);
    const out: WireInput = { Tags: page, Truncated: rest.length > limit };
    if (rest.length > limit) out.NextMarker = page[page.length - 1]!.TagKey;
    return out;
  }

  private async updateAlias(input: WireInput): Promise<WireInput> {
    const name = reqString(input, 'AliasName', 256);
    const targetRef = reqString(input, 'TargetKeyId');
    if (targetRef.startsWith('alias/') || targetRef.includes(':alias/'))
      throw kmsErrors.validation('TargetKeyId must be a key id or key ARN, not an alias');
    await this.store.mutate((draft) => {
      const alias = Object.hasOwn(draft.aliases, name) ? draft.aliases[name] : undefined;
      if (alias === undefined) throw kmsErrors.notFound(`Alias ${this.aliasArn(name)} does not exist`);
      const key = this.resolve(targetRef, draft);
      if (key === undefined) throw kmsErrors.notFound(`Key '${targetRef}' does not exist`);
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      alias.targetKeyId = key.keyId;
      alias.lastUpdatedDate = this.clock.now();
    });
    return {};
  }

  private async deleteAlias(input: WireInput): Promise<WireInput> {
    const name = reqString(input, 'AliasName', 256);
    await this.store.mutate((draft) => {
      if (!Object.hasOwn(draft.aliases, name)) throw kmsErrors.notFound(`Alias ${this.aliasArn(name)} does not exist`);
      delete draft.aliases[name];
    });
    return {};
  }

  private async updateKeyDescription(input: WireInput): Promise<WireInput> {
    const description = input.Description;
    if (typeof description !== 'string' || description.length > 8192)
      throw kmsErrors.validation('Description expected a string of length 0-8192');
    await this.change(input, (key) => {
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      key.description = description;
    });
    return {};
  }

  // ---- key policies -------------------------------------------------------

  private policyName(input: WireInput): void {
    const name = input.PolicyName === undefined ? 'default' : reqString(input, 'PolicyName', 128);
    if (name !== 'default') throw kmsErrors.notFound(`Key policy ${name} does not exist; keys have one policy, "default"`);
  }

  private async getKeyPolicy(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    this.policyName(input);
    return { Policy: key.policy ?? defaultKeyPolicy(this.accountId), PolicyName: 'default' };
  }

  private async putKeyPolicy(input: WireInput, caller: ServiceCaller): Promise<WireInput> {
    this.policyName(input);
    const policy = reqString(input, 'Policy', 131072);
    parseKeyPolicy(policy);
    const bypass = input.BypassPolicyLockoutSafetyCheck === true;
    await this.change(input, (key) => {
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      if (!bypass) this.lockoutCheck({ ...key, policy }, caller);
      key.policy = policy;
    });
    return {};
  }

  /** AWS's lockout safety check: a new policy must still let the caller change the policy. */
  private lockoutCheck(key: KeyRecord, caller: ServiceCaller): void {
    if (!caller.may('PutKeyPolicy', key)) {
      throw kmsErrors.malformedPolicy('The new key policy will not allow you to update the key policy in the future');
    }
  }

  private async listKeyPolicies(input: WireInput): Promise<WireInput> {
    this.requireKey(input);
    optInt(input, 'Limit', 1, 1000);
    return { PolicyNames: ['default'], Truncated: false };
  }

  // ---- grants -------------------------------------------------------------

  private async createGrant(input: WireInput): Promise<WireInput> {
    const grantee = reqString(input, 'GranteePrincipal', 256);
    const retiring = optString(input, 'RetiringPrincipal', 256);
    const name = optString(input, 'Name', 256);
    if (name !== undefined && !/^[a-zA-Z0-9:/_-]+$/.test(name)) throw kmsErrors.validation('Name expected [a-zA-Z0-9:/_-]');
    const ops = input.Operations;
    if (!Array.isArray(ops) || ops.length === 0 || !ops.every((o) => (GRANT_OPERATIONS as readonly unknown[]).includes(o))) {
      throw kmsErrors.validation(`Operations expected a list of ${GRANT_OPERATIONS.join(', ')}`);
    }
    const constraints = readConstraints(input);
    return this.store.mutate((draft) => {
      const key = this.requireKey(input, 'KeyId', draft);
      this.requireNotPending(key);
      // CreateGrant is idempotent by name: the same grant again yields the existing grant with a fresh token.
      const same =
        name === undefined
          ? undefined
          : Object.values(draft.grants).find(
              (g) =>
                g.keyId === key.keyId &&
                g.name === name &&
                g.granteePrincipal === grantee &&
                JSON.stringify(g.operations) === JSON.stringify(ops),
            );
      const grantId = same?.grantId ?? randomBytes(32).toString('hex');
      const { token, tokenHash } = newGrantToken(grantId);
      if (same !== undefined) {
        same.tokenHash = tokenHash;
        return { GrantId: grantId, GrantToken: token };
      }
      const grant: GrantRecord = {
        grantId,
        keyId: key.keyId,
        granteePrincipal: grantee,
        operations: ops as string[],
        issuingAccount: `arn:aws:iam::${this.accountId}:root`,
        creationDate: this.clock.now(),
        tokenHash,
      };
      if (name !== undefined) grant.name = name;
      if (retiring !== undefined) grant.retiringPrincipal = retiring;
      if (constraints !== undefined) grant.constraints = constraints;
      draft.grants[grantId] = grant;
      return { GrantId: grantId, GrantToken: token };
    });
  }

  private async listGrants(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const limit = optInt(input, 'Limit', 1, 100) ?? 50;
    const marker = optString(input, 'Marker', 1024);
    const grantId = optString(input, 'GrantId', 128);
    const grantee = optString(input, 'GranteePrincipal', 256);
    const all = Object.values(this.store.snapshot.grants)
      .filter(
        (g) =>
          g.keyId === key.keyId &&
          (grantId === undefined || g.grantId === grantId) &&
          (grantee === undefined || g.granteePrincipal === grantee),
      )
      .sort((a, b) => (a.grantId < b.grantId ? -1 : 1))
      .filter((g) => marker === undefined || g.grantId > marker);
    const page = all.slice(0, limit);
    const out: WireInput = {
      Grants: page.map((g) => ({
        KeyId: this.keyArn(g.keyId),
        GrantId: g.grantId,
        ...(g.name === undefined ? {} : { Name: g.name }),
        CreationDate: epochSeconds(g.creationDate),
        GranteePrincipal: g.granteePrincipal,
        ...(g.retiringPrincipal === undefined ? {} : { RetiringPrincipal: g.retiringPrincipal }),
        IssuingAccount: g.issuingAccount,
        Operations: g.operations,
        ...(g.constraints === undefined ? {} : { Constraints: g.constraints }),
      })),
      Truncated: all.length > limit,
    };
    if (all.length > limit) out.NextMarker = page[page.length - 1]!.grantId;
    return out;
  }

  private async retireGrant(input: WireInput, caller: ServiceCaller): Promise<WireInput> {
    const byToken = input.GrantToken !== undefined;
    await this.store.mutate((draft) => {
      let grant: GrantRecord | undefined;
      if (byToken) grant = grantForToken(draft, input.GrantToken);
      else {
        const key = this.requireKey(input, 'KeyId', draft);
        const id = reqString(input, 'GrantId', 128);
        grant = Object.hasOwn(draft.grants, id) ? draft.grants[id] : undefined;
        if (grant === undefined || grant.keyId !== key.keyId) throw kmsErrors.notFound(`Grant ${id} does not exist`);
      }
      // AWS: the retiring principal, or the grantee when the grant includes RetireGrant, may retire it.
      const allowed =
        grant.retiringPrincipal === caller.arn || (grant.granteePrincipal === caller.arn && grant.operations.includes('RetireGrant'));
      if (!allowed) throw kmsErrors.accessDenied(`${caller.arn || 'The caller'} is not allowed to retire grant ${grant.grantId}`);
      delete draft.grants[grant.grantId];
    });
    return {};
  }

  private async revokeGrant(input: WireInput): Promise<WireInput> {
    const id = reqString(input, 'GrantId', 128);
    await this.store.mutate((draft) => {
      const key = this.requireKey(input, 'KeyId', draft);
      const grant = Object.hasOwn(draft.grants, id) ? draft.grants[id] : undefined;
      if (grant === undefined || grant.keyId !== key.keyId)
        throw kmsErrors.invalidGrantId(`Grant ${id} does not exist for ${this.keyArn(key.keyId)}`);
      delete draft.grants[id];
    });
    return {};
  }

  private async deleteImportedKeyMaterial(input: WireInput): Promise<WireInput> {
    await this.change(input, (key) => {
      if (key.origin !== 'EXTERNAL') throw kmsErrors.unsupportedOperation(`${this.keyArn(key.keyId)} does not have Origin EXTERNAL.`);
      if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
      // The material check stays: a later import must bring back the same material, as in AWS.
      key.backing = [];
      delete key.validTo;
      delete key.expirationModel;
      delete key.importParams;
      key.state = 'PendingImport';
    });
    return {};
  }

  // ---- multi-region keys ---------------------------------------------------

  private multiRegionPrimary(key: KeyRecord): NonNullable<KeyRecord['multiRegion']> {
    const mr = key.multiRegion;
    if (mr === undefined) throw kmsErrors.unsupportedOperation(`${this.keyArn(key.keyId)} is not a multi-region key.`);
    if (mr.role !== 'PRIMARY')
      throw kmsErrors.unsupportedOperation(`${this.keyArn(key.keyId)} is a replica; call this on the primary in ${mr.primaryRegion}.`);
    return mr;
  }

  /** What replicas share with their primary: material, rotation and the multi-region configuration. */
  private shared(key: KeyRecord, multiRegion: NonNullable<KeyRecord['multiRegion']>): WireInput {
    const out: WireInput = {
      keyId: key.keyId,
      creationDate: key.creationDate,
      origin: key.origin,
      backing: key.backing,
      rotation: key.rotation,
      multiRegion,
    };
    if (key.materialCheck !== undefined) out.materialCheck = key.materialCheck;
    if (key.expirationModel !== undefined) out.expirationModel = key.expirationModel;
    if (key.validTo !== undefined) out.validTo = key.validTo;
    return out;
  }

  private async replicateKey(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const region = reqString(input, 'ReplicaRegion', 32);
    const mr = this.multiRegionPrimary(key);
    if (region === this.region) throw kmsErrors.validation('ReplicaRegion must be another region');
    if (this.peers === undefined || !this.peers.has(region))
      throw kmsErrors.validation(`Region ${region} is not configured as a peer of this key service`);
    if (mr.replicaRegions.includes(region)) throw kmsErrors.alreadyExists(`${key.keyId} already has a replica in ${region}`);
    if (input.Policy !== undefined) parseKeyPolicy(reqString(input, 'Policy', 131072));
    const tags = readTags(input);
    const next = { role: 'REPLICA' as const, primaryRegion: this.region, replicaRegions: [...mr.replicaRegions, region] };
    const out = await this.peers.call(region, SYNC_REPLICA, {
      KeyId: key.keyId,
      Create: true,
      Key: this.shared(key, next),
      Description: input.Description === undefined ? key.description : String(input.Description),
      ...(input.Policy === undefined ? {} : { Policy: input.Policy }),
      Tags: tags,
    });
    const updated = await this.change({ KeyId: key.keyId }, (k) => {
      if (k.multiRegion !== undefined && !k.multiRegion.replicaRegions.includes(region)) k.multiRegion.replicaRegions.push(region);
    });
    await this.pushToReplicas(updated, region);
    return { ReplicaKeyMetadata: out.KeyMetadata, ReplicaPolicy: out.Policy, ReplicaTags: tags };
  }

  private async updatePrimaryRegion(input: WireInput): Promise<WireInput> {
    const key = this.requireKey(input);
    const region = reqString(input, 'PrimaryRegion', 32);
    const mr = this.multiRegionPrimary(key);
    if (!mr.replicaRegions.includes(region)) throw kmsErrors.validation(`${key.keyId} has no replica in ${region}`);
    const replicaRegions = [this.region, ...mr.replicaRegions.filter((r) => r !== region)];
    // The new primary first: if it cannot be reached, nothing changes here.
    await this.peers!.call(region, SYNC_REPLICA, {
      KeyId: key.keyId,
      Create: false,
      Key: this.shared(key, { role: 'PRIMARY', primaryRegion: region, replicaRegions }),
    });
    const updated = await this.change({ KeyId: key.keyId }, (k) => {
      k.multiRegion = { role: 'REPLICA', primaryRegion: region, replicaRegions };
      // Automatic rotation is a property of the primary.
      k.rotation = { ...k.rotation };
    });
    for (const r of replicaRegions.filter((x) => x !== this.region)) {
      await this.peers!.call(r, SYNC_REPLICA, {
        KeyId: key.keyId,
        Create: false,
        Key: this.shared(updated, { role: 'REPLICA', primaryRegion: region, replicaRegions }),
      }).catch(() => undefined);
    }
    return {};
  }

  /** Sends a primary's shared properties to its replicas (best effort: an unreachable replica catches up at the next change). */
  private async pushToReplicas(key: KeyRecord, except?: string): Promise<void> {
    const mr = key.multiRegion;
    if (mr === undefined || this.peers === undefined) return;
    for (const region of mr.replicaRegions) {
      if (region === except) continue;
      await this.peers
        .call(region, SYNC_REPLICA, {
          KeyId: key.keyId,
          Create: false,
          Key: this.shared(key, { role: 'REPLICA', primaryRegion: mr.primaryRegion, replicaRegions: mr.replicaRegions }),
        })
        .catch(() => undefined);
    }
  }

  /**
   * The receiving side of replication (a vectorseal operation, not an AWS one;
   * callers need it in their policy). Creates a replica, or updates the shared
   * properties of an existing copy; state, description, policy, tags and
   * aliases stay this region's own, as in AWS.
   */
  private async syncReplica(input: WireInput): Promise<WireInput> {
    const incoming = input.Key as Partial<KeyRecord> | undefined;
    const keyId = reqString(input, 'KeyId', 64);
    if (typeof incoming !== 'object' || incoming === null || incoming.keyId !== keyId || !/^mrk-[0-9a-f]{32}$/.test(keyId)) {
      throw kmsErrors.validation('Key expected a multi-region key record');
    }
    const mr = incoming.multiRegion;
    if (
      mr === undefined ||
      (mr.role !== 'PRIMARY' && mr.role !== 'REPLICA') ||
      !Array.isArray(incoming.backing) ||
      incoming.backing.length === 0
    ) {
      throw kmsErrors.validation('Key expected a multi-region configuration and key material');
    }
    const newest = incoming.backing[incoming.backing.length - 1]!;
    // Replicas share material wrapped by the root key: both regions must hold the same one.
    try {
      const probe = await this.store.backingKey(incoming as KeyRecord, newest.version);
      if (probe === undefined) throw new Error('missing');
    } catch {
      throw kmsErrors.unsupportedOperation('The key material cannot be opened here: both regions must share the root key');
    }
    const policy = input.Policy === undefined ? undefined : reqString(input, 'Policy', 131072);
    if (policy !== undefined) parseKeyPolicy(policy);
    const record = await this.store.mutate((draft) => {
      const existing = Object.hasOwn(draft.keys, keyId) ? draft.keys[keyId] : undefined;
      if (input.Create === true) {
        if (existing !== undefined) throw kmsErrors.alreadyExists(`${keyId} already exists in ${this.region}`);
        const created: KeyRecord = {
          keyId,
          creationDate: Number(incoming.creationDate),
          description: typeof input.Description === 'string' ? input.Description : '',
          origin: incoming.origin === 'EXTERNAL' ? 'EXTERNAL' : 'AWS_KMS',
          state: 'Enabled',
          tags: readTags(input),
          rotation: { enabled: false, periodDays: 365 },
          backing: [],
        };
        if (policy !== undefined) created.policy = policy;
        draft.keys[keyId] = created;
      } else if (existing === undefined || existing.multiRegion === undefined) {
        throw kmsErrors.notFound(`${keyId} has no copy in ${this.region}`);
      }
      const k = draft.keys[keyId]!;
      k.backing = structuredClone(incoming.backing!);
      k.rotation = structuredClone(incoming.rotation ?? k.rotation);
      k.multiRegion = { role: mr.role, primaryRegion: String(mr.primaryRegion), replicaRegions: [...mr.replicaRegions].map(String) };
      if (incoming.materialCheck !== undefined) k.materialCheck = incoming.materialCheck;
      if (incoming.expirationModel !== undefined) k.expirationModel = incoming.expirationModel;
      if (incoming.validTo !== undefined) k.validTo = incoming.validTo;
      if (k.origin === 'EXTERNAL' && k.state === 'PendingImport') k.state = 'Enabled';
      return k;
    });
    return { KeyMetadata: this.metadata(record), Policy: record.policy ?? defaultKeyPolicy(this.accountId) };
  }

  // ---- import (bring your own key) ----------------------------------------

  private importGate(key: KeyRecord): void {
    if (key.origin !== 'EXTERNAL') throw kmsErrors.unsupportedOperation(`${this.keyArn(key.keyId)} does not have Origin EXTERNAL.`);
    if (key.state === 'PendingDeletion') throw kmsErrors.invalidState(`${this.keyArn(key.keyId)} is pending deletion.`);
  }

  private async getParametersForImport(input: WireInput): Promise<WireInput> {
    const algorithm = reqString(input, 'WrappingAlgorithm');
    const spec = reqString(input, 'WrappingKeySpec');
    if (algorithm !== 'RSAES_OAEP_SHA_256')
      throw kmsErrors.unsupportedOperation('Only the RSAES_OAEP_SHA_256 wrapping algorithm is supported');
    const bits = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 }[spec];
    if (bits === undefined) throw kmsErrors.validation('WrappingKeySpec expected one of RSA_2048, RSA_3072, RSA_4096');
    this.importGate(this.requireKey(input));
    const { publicKey, privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits });
    const publicDer = publicKey.export({ format: 'der', type: 'spki' });
    const privateDer = privateKey.export({ format: 'der', type: 'pkcs8' });
    const tokenId = randomBytes(16).toString('hex');
    const validTo = this.clock.now() + IMPORT_TOKEN_TTL_MS;
    try {
      const key = await this.change(input, async (k) => {
        this.importGate(k);
        k.importParams = { tokenId, validTo, privateKey: await this.store.wrapImportKey(k.keyId, tokenId, privateDer) };
      });
      return {
        KeyId: this.keyArn(key.keyId),
        ImportToken: b64(encodeImportToken(key.keyId, tokenId)),
        PublicKey: b64(publicDer),
        ParametersValidTo: epochSeconds(validTo),
      };
    } finally {
      privateDer.fill(0);
    }
  }

  private async importKeyMaterial(input: WireInput): Promise<WireInput> {
    const token = decodeImportToken(reqBlob(input, 'ImportToken', MAX_CIPHERTEXT));
    const encrypted = reqBlob(input, 'EncryptedKeyMaterial', MAX_CIPHERTEXT);
    const model = optEnum(input, 'ExpirationModel', ['KEY_MATERIAL_EXPIRES', 'KEY_MATERIAL_DOES_NOT_EXPIRE'] as const);
    const validToInput = input.ValidTo;
    if (validToInput !== undefined && typeof validToInput !== 'number') throw kmsErrors.validation('ValidTo expected a timestamp');
    const expires = model === 'KEY_MATERIAL_EXPIRES' || (model === undefined && validToInput !== undefined);
    if (expires && validToInput === undefined) throw kmsErrors.validation('ValidTo is required with KEY_MATERIAL_EXPIRES');
    if (!expires && validToInput !== undefined) throw kmsErrors.validation('ValidTo is not allowed with KEY_MATERIAL_DOES_NOT_EXPIRE');
    const validTo = validToInput === undefined ? undefined : Math.round(validToInput * 1000);
    const now = this.clock.now();
    if (validTo !== undefined && (validTo <= now || validTo > now + 365 * DAY_MS)) {
      throw kmsErrors.validation('ValidTo must be in the future and at most 365 days away');
    }

    await this.change(input, async (key) => {
      this.importGate(key);
      const params = key.importParams;
      if (token.keyId !== key.keyId || params === undefined || params.tokenId !== token.tokenId) {
        throw kmsErrors.invalidImportToken('The import token is not valid for this key');
      }
      if (params.validTo <= now) throw kmsErrors.expiredImportToken('The import token has expired');
      const privateDer = await this.store.unwrapImportKey(key.keyId, params);
      let material: Buffer;
      try {
        material = privateDecrypt(
          {
            key: createPrivateKey({ key: privateDer, format: 'der', type: 'pkcs8' }),
            padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: 'sha256',
          },
          encrypted,
        );
      } catch {
        throw kmsErrors.invalidCiphertext('The encrypted key material could not be decrypted with the import parameters');
      } finally {
        privateDer.fill(0);
      }
      try {
        if (material.length !== BACKING_KEY_BYTES) {
          throw kmsErrors.validation(`Key material expected ${BACKING_KEY_BYTES} bytes, got length=${material.length}`);
        }
        const check = createHash('sha256').update(`vectorseal/kms/material-check/v1\0${key.keyId}\0`).update(material).digest('hex');
        if (key.materialCheck !== undefined && key.materialCheck !== check) {
          throw kmsErrors.incorrectKeyMaterial('The key material is not the material previously imported into this key');
        }
        if (key.backing.length === 0) {
          key.backing.push({ version: 1, createdAt: now, material: await this.store.wrapMaterial(key.keyId, 1, material) });
        }
        key.materialCheck = check;
      } finally {
        material.fill(0);
      }
      key.expirationModel = expires ? 'KEY_MATERIAL_EXPIRES' : 'KEY_MATERIAL_DOES_NOT_EXPIRE';
      if (validTo === undefined) delete key.validTo;
      else key.validTo = validTo;
      delete key.importParams;
      if (key.state === 'PendingImport') key.state = 'Enabled';
    });
    return {};
  }
}

function deleteKey(draft: KeyStoreState, keyId: string): void {
  delete draft.keys[keyId];
  for (const [name, alias] of Object.entries(draft.aliases)) {
    if (alias.targetKeyId === keyId) delete draft.aliases[name];
  }
  for (const [id, grant] of Object.entries(draft.grants)) {
    if (grant.keyId === keyId) delete draft.grants[id];
  }
}

/** The vectorseal operation one region's key service calls on another's to replicate a multi-region key. */
export const SYNC_REPLICA = 'VectorsealSyncReplica';

const ANONYMOUS: ServiceCaller = { arn: '', may: () => false };

/** Operations whose requests carry GrantTokens. */
const GRANT_TOKEN_OPERATIONS = new Set([
  'Encrypt',
  'Decrypt',
  'ReEncrypt',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'DescribeKey',
  'CreateGrant',
  'RetireGrant',
]);

/**
 * KMS operations this service answers with UnsupportedOperationException
 * (asymmetric and HMAC keys, custom key stores, key agreement); the README
 * lists them. Any other unknown target is UnknownOperationException.
 */
const UNSUPPORTED = new Set([
  'Sign',
  'Verify',
  'GenerateMac',
  'VerifyMac',
  'GetPublicKey',
  'DeriveSharedSecret',
  'GenerateDataKeyPair',
  'GenerateDataKeyPairWithoutPlaintext',
  'CreateCustomKeyStore',
  'DeleteCustomKeyStore',
  'DescribeCustomKeyStores',
  'UpdateCustomKeyStore',
  'ConnectCustomKeyStore',
  'DisconnectCustomKeyStore',
  'ListRetirableGrants',
]);

function optBool(input: WireInput, name: string): boolean | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw kmsErrors.validation(`${name} expected a boolean`);
  return v;
}

function readTagKeys(input: WireInput): string[] {
  const keys = input.TagKeys;
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.length > MAX_TAGS ||
    !keys.every((k) => typeof k === 'string' && k.length >= 1 && k.length <= 128)
  ) {
    throw kmsErrors.validation('TagKeys expected 1-50 tag keys of length 1-128');
  }
  return keys as string[];
}

function readConstraints(input: WireInput): GrantRecord['constraints'] | undefined {
  const c = input.Constraints;
  if (c === undefined || c === null) return undefined;
  if (typeof c !== 'object' || Array.isArray(c)) throw kmsErrors.validation('Constraints expected a structure');
  const out: NonNullable<GrantRecord['constraints']> = {};
  for (const name of Object.keys(c)) {
    if (name !== 'EncryptionContextEquals' && name !== 'EncryptionContextSubset')
      throw kmsErrors.validation(`Constraints.${name} is not a grant constraint`);
    out[name] = optContext(c as WireInput, name);
  }
  if (out.EncryptionContextEquals !== undefined && out.EncryptionContextSubset !== undefined) {
    throw kmsErrors.validation('Constraints expected EncryptionContextEquals or EncryptionContextSubset, not both');
  }
  return out;
}

function checkAlgorithm(input: WireInput, name: string): void {
  const algorithm = input[name];
  if (algorithm !== undefined && algorithm !== 'SYMMETRIC_DEFAULT') {
    throw new KmsException('InvalidKeyUsageException', `${name} ${String(algorithm)} is not valid for a symmetric key`);
  }
}

function readTags(input: WireInput): { TagKey: string; TagValue: string }[] {
  const tags = input.Tags;
  if (tags === undefined || tags === null) return [];
  if (!Array.isArray(tags)) throw kmsErrors.validation('Tags expected a list');
  if (tags.length > MAX_TAGS) throw kmsErrors.tag(`At most ${MAX_TAGS} tags are allowed`);
  const seen = new Set<string>();
  return tags.map((t: unknown) => {
    const tag = t as { TagKey?: unknown; TagValue?: unknown };
    if (
      typeof tag?.TagKey !== 'string' ||
      typeof tag.TagValue !== 'string' ||
      tag.TagKey.length === 0 ||
      tag.TagKey.length > 128 ||
      tag.TagValue.length > 256
    ) {
      throw kmsErrors.tag('Each tag expected a TagKey (1-128 characters) and a TagValue (0-256) string');
    }
    if (tag.TagKey.startsWith('aws:')) throw kmsErrors.tag('Tag keys starting with "aws:" are reserved');
    if (seen.has(tag.TagKey)) throw kmsErrors.tag(`Tag key ${tag.TagKey} appears twice`);
    seen.add(tag.TagKey);
    return { TagKey: tag.TagKey, TagValue: tag.TagValue };
  });
}
