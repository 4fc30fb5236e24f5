import { createHash, randomBytes } from 'node:crypto';
import { kmsErrors } from './errors.js';
import type { GrantRecord, KeyStoreState } from './key-store.js';

/** Operations a grant may allow (the symmetric-key subset AWS accepts). */
export const GRANT_OPERATIONS = [
  'Decrypt',
  'Encrypt',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'ReEncryptFrom',
  'ReEncryptTo',
  'CreateGrant',
  'RetireGrant',
  'DescribeKey',
] as const;

/**
 * A new grant token: the grant id and a random secret. Only a hash of the
 * secret is stored, so a token cannot be rebuilt from what etcd or the state
 * file holds. Grants here take effect at once (the store is strongly
 * consistent), so a token proves a grant exists; it adds no permission.
 */
export function newGrantToken(grantId: string): { token: string; tokenHash: string } {
  const token = `${grantId}.${randomBytes(24).toString('hex')}`;
  return { token, tokenHash: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash('sha256').update('vectorseal/kms/grant-token/v1\0').update(token).digest('hex');
}

/** The grant a token belongs to, or InvalidGrantTokenException. */
export function grantForToken(state: Readonly<KeyStoreState>, token: unknown): GrantRecord {
  if (typeof token !== 'string' || token.length > 8192) throw kmsErrors.invalidGrantToken('The grant token is not valid');
  const id = token.split('.', 1)[0]!;
  const grant = Object.hasOwn(state.grants, id) ? state.grants[id] : undefined;
  if (grant === undefined || grant.tokenHash !== hashToken(token)) throw kmsErrors.invalidGrantToken('The grant token is not valid');
  return grant;
}

/** Checks a request's GrantTokens member: at most 10 tokens, each naming a live grant. */
export function checkGrantTokens(state: Readonly<KeyStoreState>, tokens: unknown): void {
  if (tokens === undefined || tokens === null) return;
  if (!Array.isArray(tokens) || tokens.length > 10) throw kmsErrors.validation('GrantTokens expected a list of at most 10 tokens');
  for (const t of tokens) grantForToken(state, t);
}

/** Whether a grant lets `granteeArn` perform `operation` on `keyId` with this encryption context. */
export function grantAllows(
  grant: GrantRecord,
  granteeArn: string,
  keyId: string,
  operation: string,
  context: Record<string, string> | undefined,
): boolean {
  if (grant.keyId !== keyId || grant.granteePrincipal !== granteeArn || !grant.operations.includes(operation)) return false;
  const ctx = context ?? {};
  const equals = grant.constraints?.EncryptionContextEquals;
  if (equals !== undefined) {
    const a = Object.keys(equals);
    if (a.length !== Object.keys(ctx).length || !a.every((k) => Object.hasOwn(ctx, k) && ctx[k] === equals[k])) return false;
  }
  const subset = grant.constraints?.EncryptionContextSubset;
  if (subset !== undefined && !Object.keys(subset).every((k) => Object.hasOwn(ctx, k) && ctx[k] === subset[k])) return false;
  return true;
}
