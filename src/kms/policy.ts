import type { PolicyStatement } from './config.js';

/** What a policy decision looks at about a request. */
export interface PolicyRequest {
  /** The operation name; ReEncrypt is checked twice, as `ReEncryptFrom` and `ReEncryptTo`. */
  operation: string;
  /**
   * Every name the target key goes by (key id, key ARN, its aliases' names and
   * ARNs) or, when the reference did not resolve, the reference as given.
   * Undefined for operations that act on no key (CreateKey, ListKeys, ListAliases).
   */
  keyNames?: string[];
  encryptionContext?: Record<string, string>;
}

/** Whether any statement allows the request. Default deny. */
export function isAllowed(policy: readonly PolicyStatement[], req: PolicyRequest): boolean {
  return policy.some((s) => statementMatches(s, req));
}

function statementMatches(s: PolicyStatement, req: PolicyRequest): boolean {
  if (!s.operations.some((op) => operationMatches(op, req.operation))) return false;
  if (req.keyNames !== undefined) {
    const keys = s.keys ?? ['*'];
    if (!keys.includes('*') && !req.keyNames.some((n) => keys.includes(n))) return false;
  }
  if (s.encryptionContext !== undefined) {
    const ctx = req.encryptionContext;
    for (const [name, allowed] of Object.entries(s.encryptionContext)) {
      const value = ctx !== undefined && Object.hasOwn(ctx, name) ? ctx[name] : undefined;
      if (value === undefined) return false;
      if (typeof allowed === 'string' ? value !== allowed : !allowed.includes(value)) return false;
    }
  }
  return true;
}

function operationMatches(pattern: string, operation: string): boolean {
  if (pattern === '*' || pattern === operation) return true;
  // Naming ReEncrypt grants both halves of it.
  if (pattern === 'ReEncrypt' && (operation === 'ReEncryptFrom' || operation === 'ReEncryptTo')) return true;
  // A trailing `*` is a prefix match, as in AWS policies (`ReEncrypt*`, `GenerateDataKey*`).
  return pattern.endsWith('*') && operation.startsWith(pattern.slice(0, -1));
}
