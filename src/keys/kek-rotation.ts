import { createHash } from 'node:crypto';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import type { KeyAuditEvent } from './key-audit.js';
import { errorCode } from '../errors.js';
import { cloneKeys, keySets, type KeyCore } from './key-core.js';
import type { CollectionKeys, KekEntry, StoredWrap } from './keyring-file.js';
import type { KeyringOp } from './keyring-log.js';
import { macKeyContext, toStored, toWrapped } from './keyring-mac-key.js';

export interface RotationProgress {
  done: number;
  total: number;
}

export interface RotationReport {
  kek: string;
  keyId: string;
  fromVersion: string | undefined;
  toVersion: string | undefined;
  /** Wraps rewrapped by this run. */
  rewrapped: number;
  /** Wraps that were already under the new version (a resumed rotation). */
  alreadyCurrent: number;
  /** Whether this run completed a rotation an earlier run started. */
  resumed: boolean;
  collections: number;
}

/**
 * Rotates a KEK: creates a new KEK version, rewraps every DEK (and the
 * keyring MAC key) wrapped under it, verifying each new wrap, then commits
 * all of it as one new checkpoint. Data files are not touched. An
 * interrupted rotation leaves the keyring with a rotation marker (still
 * opening under the old version); running this again completes it without
 * creating yet another version.
 */
export async function rotateKek(
  core: KeyCore,
  options: { kek?: string; onProgress?: (p: RotationProgress) => void; now?: Date } = {},
): Promise<RotationReport> {
  return core.serialized(async () => {
    const ring = core.ring;
    const data = ring.data;
    const resumed = data.rotation !== undefined;
    const kekName = options.kek ?? data.rotation?.kek ?? data.defaultKeks[0];
    if (kekName === undefined || !Object.prototype.hasOwnProperty.call(data.keks, kekName))
      throw new NotFoundError(`no KEK named "${String(kekName)}"`);
    if (resumed && data.rotation?.kek !== kekName) {
      throw new InvalidArgumentError(`a rotation of KEK "${data.rotation?.kek}" is under way; run it to completion first`);
    }
    const provider = await core.provider(kekName);
    const before = await provider.describe();
    let fromVersion = data.rotation?.fromVersion ?? before.currentVersion;
    if (!resumed) {
      const root = ring.root();
      root.rotation = {
        kek: kekName,
        ...(fromVersion === undefined ? {} : { fromVersion }),
        startedAt: (options.now ?? new Date()).toISOString(),
      };
      await ring.commit([{ k: 'r', v: root }]);
    }
    crashPoint('rotate:marked');
    // A resumed rotation whose new version already exists does not create another.
    const target = resumed && before.currentVersion !== fromVersion ? before : await provider.rotate();
    fromVersion ??= before.currentVersion;
    crashPoint('rotate:kek-created');

    const changed = new Map<string, { kind: 'c' | 's'; keys: CollectionKeys }>();
    const jobs: { cid: string; kind: 'c' | 's'; dekIndex: number; index: number; version: number; wrap: StoredWrap }[] = [];
    let alreadyCurrent = 0;
    for (const [cid, col, kind] of keySets(ring.data)) {
      col.deks.forEach((dek, dekIndex) => {
        dek.wraps.forEach((wrap, index) => {
          if (wrap.kek !== kekName) return;
          // The blob is not needed to tell whether a wrap is current: skip decoding it.
          if (provider.isCurrent(toWrapped({ ...wrap, blob: '' }), target)) alreadyCurrent += 1;
          else jobs.push({ cid, kind, dekIndex, index, version: dek.version, wrap });
        });
      });
    }
    let done = 0;
    options.onProgress?.({ done, total: jobs.length });
    const concurrency = provider.name === 'local' ? 1 : 8;
    await runPool(jobs, concurrency, async (job) => {
      const ctx = core.context(job.cid, job.version);
      // A failure is recorded per DEK; the successes go into one event below (see rewrapSummary).
      const fresh = await core.deks.rewrap(provider, job.wrap, ctx).catch((err: unknown) => {
        core.audit.emit({
          action: 'rewrap',
          outcome: 'error',
          collectionId: job.cid,
          kek: kekName,
          dekVersion: job.version,
          error: errorCode(err),
        });
        throw err;
      });
      let entry = changed.get(job.cid);
      if (!entry) {
        const src = job.kind === 'c' ? ring.data.collections[job.cid] : ring.data.system?.[job.cid];
        entry = { kind: job.kind, keys: cloneKeys(src as CollectionKeys) };
        changed.set(job.cid, entry);
      }
      (entry.keys.deks[job.dekIndex] as { wraps: StoredWrap[] }).wraps[job.index] = toStored(kekName, fresh);
      crashPoint('rotate:rewrap-one');
      done += 1;
      options.onProgress?.({ done, total: jobs.length });
    });
    // The MAC key's wraps under this KEK move to the new version too, so old versions can be destroyed.
    const macCtx = macKeyContext(ring.data.storeId);
    const macKey: StoredWrap[] = [];
    for (const w of ring.data.macKey) {
      if (w.kek !== kekName || provider.isCurrent(toWrapped({ ...w, blob: '' }), target)) macKey.push(w);
      else macKey.push(toStored(kekName, await core.deks.rewrap(provider, w, macCtx)));
    }
    core.audit.emit(rewrapSummary(jobs, kekName, provider.keyId, fromVersion, target.currentVersion, alreadyCurrent));
    crashPoint('rotate:rewrapped');
    const ops: KeyringOp[] = [];
    for (const [cid, { kind, keys }] of changed) ops.push({ k: kind, id: cid, v: keys });
    const entry: KekEntry = { ...(ring.data.keks[kekName] as KekEntry) };
    if (target.currentVersion !== undefined) entry.currentVersion = target.currentVersion;
    // Maintenance runs with an injected clock: the policy must see the rotation at that time.
    entry.rotatedAt = (options.now ?? new Date()).toISOString();
    ops.push({ k: 'k', id: kekName, v: entry });
    const root = ring.root();
    delete root.rotation;
    ops.push({ k: 'r', v: root });
    await ring.commitAsCheckpoint(ops, macKey);
    crashPoint('rotate:committed');
    core.audit.emit({
      action: 'rotate-kek',
      outcome: 'ok',
      kek: kekName,
      keyId: provider.keyId,
      ...(target.currentVersion === undefined ? {} : { kekVersion: target.currentVersion }),
    });
    return {
      kek: kekName,
      keyId: provider.keyId,
      fromVersion,
      toVersion: target.currentVersion,
      rewrapped: jobs.length,
      alreadyCurrent,
      resumed,
      collections: Object.keys(ring.data.collections).length,
    };
  });
}

/**
 * The audit event for a rotation's rewraps: one entry naming the KEK, both
 * versions and the count, rather than one per DEK (at 10,000 collections
 * those lines were most of a rotation's time). Which DEKs they were stays
 * derivable from the trail itself, whose 'generate' and 'destroy' entries
 * name every collection's DEKs: every live DEK wrapped under this KEK and
 * not yet under the new version. `rewrapSetSha256` (SHA-256 of the sorted
 * "collectionId/dekVersion" lines) lets that derivation be checked exactly.
 */
function rewrapSummary(
  jobs: readonly { cid: string; version: number }[],
  kek: string,
  keyId: string,
  fromVersion: string | undefined,
  toVersion: string | undefined,
  alreadyCurrent: number,
): KeyAuditEvent {
  const lines = jobs.map((j) => `${j.cid}/${j.version}\n`).sort();
  const hash = createHash('sha256');
  for (const l of lines) hash.update(l);
  return {
    action: 'rewrap',
    outcome: 'ok',
    kek,
    keyId,
    ...(toVersion === undefined ? {} : { kekVersion: toVersion }),
    details: {
      rewrapped: jobs.length,
      alreadyCurrent,
      collections: new Set(jobs.map((j) => j.cid)).size,
      ...(fromVersion === undefined ? {} : { fromVersion }),
      rewrapSetSha256: hash.digest('hex'),
    },
  };
}

async function runPool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
