import { InvalidArgumentError } from '../errors.js';
import type { KeyringData, RotationPolicy } from './keyring-file.js';

/** Throws unless every limit of a policy is a positive integer; returns a plain copy. */
export function checkPolicy(policy: RotationPolicy): RotationPolicy {
  if (typeof policy !== 'object' || policy === null) throw new InvalidArgumentError('policy expected an object');
  const out: RotationPolicy = {};
  for (const k of ['kekRotationDays', 'dekRotationDays', 'dekMaxPages'] as const) {
    const v = Object.prototype.hasOwnProperty.call(policy, k) ? policy[k] : undefined;
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`policy "${k}" expected a positive integer, got ${String(v)}`);
    out[k] = v;
  }
  for (const k of Object.keys(policy)) {
    if (!['kekRotationDays', 'dekRotationDays', 'dekMaxPages'].includes(k))
      throw new InvalidArgumentError(`policy "${k.slice(0, 64)}" is not a policy setting`);
  }
  return out;
}

/** KEK rotations and re-keys that the rotation policies say are due at `now`. */
export function dueWork(data: Readonly<KeyringData>, now: Date = new Date()): { kekRotations: string[]; rekeys: string[] } {
  const t = now.getTime();
  const policyFor = (tenant?: string): RotationPolicy =>
    (tenant === undefined ? undefined : data.tenants[tenant]?.policy) ?? data.policy ?? {};
  const kekRotations = new Set<string>();
  for (const [name, entry] of Object.entries(data.keks)) {
    if (entry.state === 'destroyed' || entry.state === 'pending-deletion') continue;
    const days = policyFor(entry.tenant).kekRotationDays;
    if (days === undefined) continue;
    const since = Date.parse(entry.rotatedAt ?? entry.createdAt);
    if (t - since >= days * 86_400_000) kekRotations.add(name);
  }
  const rekeys: string[] = [];
  for (const [cid, col] of Object.entries(data.collections)) {
    const tenant = col.tenant === undefined ? undefined : data.tenants[col.tenant];
    if (col.disabled || (tenant && tenant.state !== 'enabled')) continue;
    const p = policyFor(col.tenant);
    const active = col.deks.find((d) => d.version === col.activeVersion);
    if (!active) continue;
    const aged = p.dekRotationDays !== undefined && t - Date.parse(active.createdAt) >= p.dekRotationDays * 86_400_000;
    const worn = p.dekMaxPages !== undefined && (col.pagesWritten ?? 0) >= p.dekMaxPages;
    if (aged || worn) rekeys.push(cid);
  }
  return { kekRotations: [...kekRotations], rekeys };
}
