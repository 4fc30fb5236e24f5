import type { PolicyStatement } from './config.js';
import { grantAllows } from './grants.js';
import { evaluateKeyPolicy, parseKeyPolicy, type KeyPolicyStatement } from './key-policy.js';
import type { KeyRecord, KeyStoreState } from './key-store.js';
import { isAllowed, type PolicyRequest } from './policy.js';

/** Who is asking: an authenticated principal of the configuration (or etcd). */
export interface Caller {
  name: string;
  /** `arn:aws:iam::<account>:user/<name>`: what key policies and grants name. */
  arn: string;
  /** The principal's own policy (the IAM-policy side of the decision). */
  policy: readonly PolicyStatement[];
}

/** The ARN key policies and grants use for a principal. */
export function principalArn(accountId: string, name: string): string {
  return `arn:aws:iam::${accountId}:user/${name}`;
}

const parsed = new Map<string, KeyPolicyStatement[]>();

function policyOf(key: KeyRecord): KeyPolicyStatement[] | undefined {
  if (key.policy === undefined) return undefined;
  let p = parsed.get(key.policy);
  if (p === undefined) {
    p = parseKeyPolicy(key.policy);
    if (parsed.size > 1024) parsed.clear();
    parsed.set(key.policy, p);
  }
  return p;
}

/**
 * The access decision for one request target, as AWS makes it for a key in
 * the caller's own account: an explicit Deny in the key policy wins; else an
 * Allow naming the caller allows; else an Allow naming the account delegates
 * to the caller's own policy; else a grant on the key may allow. Requests
 * that name no key are decided by the caller's policy alone.
 */
export function authorize(
  caller: Caller,
  target: PolicyRequest & { keyArn?: string },
  key: KeyRecord | undefined,
  state: Readonly<KeyStoreState>,
  accountId: string,
): boolean {
  if (key === undefined || target.keyArn === undefined) return isAllowed(caller.policy, target);
  const policy = policyOf(key);
  // The default policy delegates every action to the caller's policy; no need to evaluate it.
  const verdict =
    policy === undefined
      ? 'delegate'
      : evaluateKeyPolicy(policy, {
          principalArn: caller.arn,
          accountId,
          operation: target.operation,
          keyArn: target.keyArn,
          ...(target.encryptionContext === undefined ? {} : { encryptionContext: target.encryptionContext }),
        });
  if (verdict === 'deny') return false;
  if (verdict === 'allow') return true;
  if (verdict === 'delegate' && isAllowed(caller.policy, target)) return true;
  for (const g of Object.values(state.grants)) {
    if (grantAllows(g, caller.arn, key.keyId, target.operation, target.encryptionContext)) return true;
  }
  return false;
}
