import { KmsException } from './errors.js';

/**
 * Key policies: IAM-style JSON documents attached to a key.
 *
 *   { "Version": "2012-10-17", "Statement": [ { "Sid": "...", "Effect": "Allow" | "Deny",
 *     "Principal": "*" | { "AWS": "*" | arn | account-id | [...] },
 *     "Action": "kms:Decrypt" | ["kms:Encrypt", "kms:GenerateDataKey*"] | "kms:*",
 *     "Resource": "*" | key ARN | [...],
 *     "Condition": { "<operator>": { "<condition key>": value | [values] } } } ] }
 *
 * Condition keys: `kms:EncryptionContext:<name>` and `kms:EncryptionContextKeys`.
 * Operators: StringEquals, StringNotEquals, StringLike, StringNotLike (with `*`
 * and `?`), their ForAnyValue: / ForAllValues: set forms, and Null.
 * `NotAction`, `NotPrincipal` and `NotResource` are refused rather than
 * half-supported.
 */
export interface KeyPolicyStatement {
  effect: 'Allow' | 'Deny';
  /** `*`, or ARNs / account ids. */
  principals: string[];
  actions: string[];
  resources: string[];
  conditions: PolicyCondition[];
}

interface PolicyCondition {
  operator: string;
  set?: 'ForAnyValue' | 'ForAllValues';
  key: string;
  values: string[];
}

/** What a key policy sees of a request. */
export interface KeyPolicyRequest {
  /** The caller's ARN (`arn:aws:iam::<account>:user/<name>`). */
  principalArn: string;
  accountId: string;
  /** Operation name without the `kms:` prefix (`ReEncryptFrom` / `ReEncryptTo` for ReEncrypt). */
  operation: string;
  keyArn: string;
  encryptionContext?: Record<string, string>;
}

/**
 * A statement's verdict for a request: `deny` (an explicit Deny matched),
 * `allow` (an Allow names the caller), `delegate` (an Allow names the account,
 * so the caller's own policy decides, as IAM policies do in AWS), or `none`.
 */
export type KeyPolicyVerdict = 'deny' | 'allow' | 'delegate' | 'none';

const OPERATORS = new Set(['StringEquals', 'StringNotEquals', 'StringLike', 'StringNotLike', 'StringEqualsIgnoreCase', 'Null']);
export const MAX_POLICY_BYTES = 32 * 1024;

/** The policy AWS gives a key created without one: the account may do everything, delegating to its principals' own policies. */
export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [
      {
        Sid: 'Enable IAM User Permissions',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
    ],
  });
}

/** Parses and checks a policy document; MalformedPolicyDocumentException names what is wrong. */
export function parseKeyPolicy(text: string): KeyPolicyStatement[] {
  const bad = (m: string) => new KmsException('MalformedPolicyDocumentException', `The key policy is malformed: ${m}`);
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) throw bad(`larger than ${MAX_POLICY_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not valid JSON');
  }
  if (!isObject(doc)) throw bad('expected a JSON object');
  if (doc.Version !== undefined && doc.Version !== '2012-10-17' && doc.Version !== '2008-10-17') throw bad('unknown Version');
  const raw = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement === undefined ? undefined : [doc.Statement];
  if (raw === undefined || raw.length === 0) throw bad('Statement is required');
  return raw.map((s: unknown, i: number): KeyPolicyStatement => {
    const where = `Statement[${i}]`;
    if (!isObject(s)) throw bad(`${where} expected an object`);
    for (const k of ['NotAction', 'NotPrincipal', 'NotResource']) if (Object.hasOwn(s, k)) throw bad(`${where}.${k} is not supported`);
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') throw bad(`${where}.Effect expected Allow or Deny`);
    const principals = readPrincipals(s.Principal, where, bad);
    const actions = strings(s.Action, `${where}.Action`, bad);
    for (const a of actions) if (a !== '*' && !/^kms:[A-Za-z*?]+$/.test(a)) throw bad(`${where}.Action "${a}" is not a kms: action`);
    const resources = s.Resource === undefined ? ['*'] : strings(s.Resource, `${where}.Resource`, bad);
    const conditions: PolicyCondition[] = [];
    if (s.Condition !== undefined) {
      if (!isObject(s.Condition)) throw bad(`${where}.Condition expected an object`);
      for (const [op, block] of Object.entries(s.Condition)) {
        const [setPart, opPart] = op.includes(':') ? (op.split(':', 2) as [string, string]) : [undefined, op];
        if (setPart !== undefined && setPart !== 'ForAnyValue' && setPart !== 'ForAllValues')
          throw bad(`${where}.Condition operator "${op}" is not supported`);
        if (!OPERATORS.has(opPart)) throw bad(`${where}.Condition operator "${op}" is not supported`);
        if (!isObject(block)) throw bad(`${where}.Condition.${op} expected an object`);
        for (const [key, value] of Object.entries(block)) {
          if (!/^kms:(EncryptionContext:.+|EncryptionContextKeys)$/.test(key))
            throw bad(`${where}.Condition key "${key}" is not supported`);
          const values = typeof value === 'boolean' ? [String(value)] : strings(value, `${where}.Condition.${op}.${key}`, bad);
          conditions.push({
            operator: opPart,
            ...(setPart === undefined ? {} : { set: setPart as 'ForAnyValue' | 'ForAllValues' }),
            key,
            values,
          });
        }
      }
    }
    return { effect: s.Effect, principals, actions, resources, conditions };
  });
}

/** Evaluates a parsed policy for one request: any matching Deny wins, then a direct Allow, then a delegating one. */
export function evaluateKeyPolicy(policy: readonly KeyPolicyStatement[], req: KeyPolicyRequest): KeyPolicyVerdict {
  let verdict: KeyPolicyVerdict = 'none';
  for (const s of policy) {
    if (!s.actions.some((a) => a === '*' || wildcard(a.toLowerCase(), `kms:${req.operation}`.toLowerCase()))) continue;
    if (!s.resources.some((r) => r === '*' || wildcard(r, req.keyArn))) continue;
    const who = principalMatch(s.principals, req);
    if (who === undefined) continue;
    if (!s.conditions.every((c) => conditionHolds(c, req.encryptionContext))) continue;
    if (s.effect === 'Deny') return 'deny';
    if (who === 'caller') verdict = 'allow';
    else if (verdict === 'none') verdict = 'delegate';
  }
  return verdict;
}

function principalMatch(principals: string[], req: KeyPolicyRequest): 'caller' | 'account' | undefined {
  if (principals.includes('*') || principals.includes(req.principalArn)) return 'caller';
  if (principals.includes(req.accountId) || principals.includes(`arn:aws:iam::${req.accountId}:root`)) return 'account';
  return undefined;
}

function conditionHolds(c: PolicyCondition, context: Record<string, string> | undefined): boolean {
  const ctx = context ?? {};
  let present: string[];
  if (c.key === 'kms:EncryptionContextKeys') present = Object.keys(ctx);
  else {
    const name = c.key.slice('kms:EncryptionContext:'.length);
    present = Object.hasOwn(ctx, name) ? [ctx[name]!] : [];
  }
  if (c.operator === 'Null') {
    // Null: "true" holds when the key is absent, "false" when present.
    return c.values.every((v) => (v === 'true' ? present.length === 0 : present.length > 0));
  }
  const one = (value: string): boolean => {
    switch (c.operator) {
      case 'StringEquals':
        return c.values.includes(value);
      case 'StringEqualsIgnoreCase':
        return c.values.some((v) => v.toLowerCase() === value.toLowerCase());
      case 'StringNotEquals':
        return !c.values.includes(value);
      case 'StringLike':
        return c.values.some((v) => wildcard(v, value));
      case 'StringNotLike':
        return !c.values.some((v) => wildcard(v, value));
      default:
        return false;
    }
  };
  // IAM semantics: ForAllValues holds for an empty set; ForAnyValue needs a member;
  // a plain operator on an absent key holds only when it is negated.
  if (c.set === 'ForAllValues') return present.every(one);
  if (c.set === 'ForAnyValue') return present.some(one);
  if (present.length === 0) return c.operator === 'StringNotEquals' || c.operator === 'StringNotLike';
  return present.every(one);
}

/** `*` matches any run, `?` one character; everything else literally. */
function wildcard(pattern: string, value: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === value;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(value);
}

function readPrincipals(p: unknown, where: string, bad: (m: string) => KmsException): string[] {
  if (p === '*') return ['*'];
  if (!isObject(p) || p.AWS === undefined) throw bad(`${where}.Principal expected "*" or {"AWS": ...}`);
  for (const k of Object.keys(p)) if (k !== 'AWS') throw bad(`${where}.Principal.${k} is not supported`);
  return strings(p.AWS, `${where}.Principal.AWS`, bad);
}

function strings(v: unknown, where: string, bad: (m: string) => KmsException): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string' && x.length > 0)) {
    throw bad(`${where} expected a string or a non-empty list of strings`);
  }
  return list as string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
