import { errorCode, InvalidArgumentError, NotFoundError } from '../errors.js';
import { crashPoint } from '../util/crash.js';
import { cloneKeys, keySets, type KeyCore } from './key-core.js';
import { rotateKek } from './kek-rotation.js';
import type { KekEntry, TenantEntry } from './keyring-file.js';
import type { KeyringOp } from './keyring-log.js';

export interface ShredReport {
  /** Tenants shredded by this run. */
  tenants: string[];
  /** Their collections, whose DEKs are destroyed: the caller removes the files. */
  collections: string[];
  /** KEKs the tenants owned alone, with the provider's outcome ('destroyed', 'scheduled' or an error code). */
  keks: Record<string, string>;
  /** KEKs the tenants shared with others: rotated, and their old versions destroyed. */
  sharedKeks: string[];
  /** Per shared KEK, the versions destroyed (or an error code where the provider cannot). */
  retiredVersions: Record<string, string[] | string>;
}

/**
 * Crypto-shreds every tenant whose deletion window has passed: their DEKs
 * are destroyed in the keyring (wraps removed), and KEKs the tenant owns
 * alone are deleted in their provider (a KMS schedules it, 7 days). A KEK
 * shared with others is rotated and its old versions destroyed, so older
 * keyring copies no longer open the tenant's data.
 */
export async function shredDue(core: KeyCore, options: { now?: Date } = {}): Promise<ShredReport> {
  const report = await shredKeyring(core, (options.now ?? new Date()).getTime());
  for (const kek of report.sharedKeks) {
    try {
      await rotateKek(core, { kek });
      report.retiredVersions[kek] = await retireOldKekVersions(core, kek);
    } catch (err) {
      report.retiredVersions[kek] = `error: ${errorCode(err)}`;
    }
  }
  return report;
}

/** Destroys the versions of a KEK older than its current one; every wrap must already be under the current one. */
export async function retireOldKekVersions(core: KeyCore, kekName: string): Promise<string[]> {
  const data = core.ring.data;
  const entry = Object.prototype.hasOwnProperty.call(data.keks, kekName) ? data.keks[kekName] : undefined;
  if (!entry?.currentVersion) throw new NotFoundError(`KEK "${kekName}" has no known current version`);
  const stale = (w: { kek: string; kekVersion?: string }) => w.kek === kekName && w.kekVersion !== entry.currentVersion;
  for (const [, col] of keySets(data)) {
    for (const d of col.deks)
      if (d.wraps.some(stale)) throw new InvalidArgumentError(`KEK "${kekName}" still wraps DEKs under an old version; rotate it first`);
  }
  if (data.macKey.some(stale))
    throw new InvalidArgumentError(`KEK "${kekName}" still wraps the keyring MAC key under an old version; rotate it first`);
  return (await core.provider(kekName)).destroyOldVersions(entry.currentVersion);
}

async function shredKeyring(core: KeyCore, now: number): Promise<ShredReport> {
  return core.serialized(async () => {
    const ring = core.ring;
    const due = Object.entries(ring.data.tenants).filter(
      ([, t]) => t.state === 'pending-deletion' && t.deleteAfter !== undefined && Date.parse(t.deleteAfter) <= now,
    );
    if (due.length === 0) return { tenants: [], collections: [], keks: {}, sharedKeks: [], retiredVersions: {} };
    const ops: KeyringOp[] = [];
    const collections: string[] = [];
    const stamp = new Date(now).toISOString();
    for (const [name, tenant] of due) {
      for (const [cid, col] of Object.entries(ring.data.collections)) {
        if (col.tenant !== name) continue;
        const next = cloneKeys(col);
        for (const d of next.deks) {
          d.state = 'destroyed';
          d.destroyedAt = stamp;
          d.wraps = [];
        }
        ops.push({ k: 'c', id: cid, v: next });
        collections.push(cid);
        core.deks.evict(cid);
      }
      const t: TenantEntry = { ...tenant, state: 'deleted', deletedAt: stamp };
      delete t.deleteAfter;
      delete t.stateBeforeDeletion;
      ops.push({ k: 't', id: name, v: t });
    }
    // DEK wraps go first: once this is committed, no copy of the keyring opens the tenant's data
    // unless an older keyring and the KEK both survive (see README, crypto-shredding). A checkpoint,
    // not an appended record: the log's earlier records still hold the wraps, and must go with them.
    await ring.commitAsCheckpoint(ops);
    crashPoint('shred:keyring-written');
    const keks: Record<string, string> = {};
    const sharedKeks = new Set<string>();
    const data = ring.data;
    for (const [name, tenant] of due) {
      for (const kekName of tenant.keks) {
        const entry = data.keks[kekName];
        if (!entry || entry.state === 'destroyed') continue;
        const sharedElsewhere =
          data.defaultKeks.includes(kekName) ||
          Object.entries(data.tenants).some(([other, t]) => other !== name && t.state !== 'deleted' && t.keks.includes(kekName));
        if (sharedElsewhere) {
          sharedKeks.add(kekName);
          continue;
        }
        try {
          const provider = await core.provider(kekName);
          keks[kekName] = await provider.destroyKek({ pendingWindowInDays: 7 });
        } catch (err) {
          keks[kekName] = `error: ${errorCode(err)}`;
        }
      }
      core.audit.emit({ action: 'shred', outcome: 'ok', tenant: name });
    }
    const after: KeyringOp[] = [];
    for (const [kekName, outcome] of Object.entries(keks)) {
      const entry: KekEntry = { ...(data.keks[kekName] as KekEntry) };
      if (outcome === 'destroyed') entry.state = 'destroyed';
      else if (outcome === 'scheduled') entry.state = 'pending-deletion';
      else continue;
      after.push({ k: 'k', id: kekName, v: entry });
    }
    await ring.commit(after);
    return { tenants: due.map(([n]) => n), collections, keks, sharedKeks: [...sharedKeks], retiredVersions: {} };
  });
}
