import type { XksRule } from './config.js';

/**
 * Secondary authorization on the request metadata. With no rules configured
 * every authenticated request is allowed; with rules, a request must match
 * one of them (deny by default). The decision names the rule that allowed it,
 * or the reason nothing did, for the audit log.
 */

export interface AuthorizationInput {
  operation: 'GetKeyMetadata' | 'Encrypt' | 'Decrypt';
  externalKeyId: string;
  metadata: Record<string, string>;
}

export type Decision = { allowed: true; rule?: string } | { allowed: false; reason: string };

const METADATA_FIELDS: Array<[keyof XksRule, string]> = [
  ['awsPrincipalArns', 'awsPrincipalArn'],
  ['kmsOperations', 'kmsOperation'],
  ['kmsKeyArns', 'kmsKeyArn'],
  ['kmsViaServices', 'kmsViaService'],
  ['awsSourceVpcs', 'awsSourceVpc'],
  ['awsSourceVpces', 'awsSourceVpce'],
];

export function authorize(rules: XksRule[] | undefined, input: AuthorizationInput): Decision {
  if (rules === undefined) return { allowed: true };
  const misses: string[] = [];
  for (const [i, rule] of rules.entries()) {
    const miss = firstMiss(rule, input);
    if (miss === undefined) return { allowed: true, rule: rule.name ?? `rule ${i}` };
    misses.push(`${rule.name ?? `rule ${i}`}: ${miss}`);
  }
  return { allowed: false, reason: misses.length ? misses.join('; ') : 'no authorization rules allow anything' };
}

/** The first field of `rule` the request does not match, or undefined when it matches them all. */
function firstMiss(rule: XksRule, input: AuthorizationInput): string | undefined {
  if (rule.operations && !rule.operations.some((p) => matches(p, input.operation))) return `operation ${input.operation} not in operations`;
  if (rule.keys && !rule.keys.some((p) => matches(p, input.externalKeyId))) return `key ${input.externalKeyId} not in keys`;
  for (const [field, name] of METADATA_FIELDS) {
    const patterns = rule[field] as string[] | undefined;
    if (patterns === undefined) continue;
    const value = Object.prototype.hasOwnProperty.call(input.metadata, name) ? input.metadata[name] : undefined;
    if (value === undefined) return `${name} absent`;
    if (!patterns.some((p) => matches(p, value))) return `${name} not in ${field}`;
  }
  return undefined;
}

/** Glob match where `*` is any run of characters; everything else literal. */
export function matches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  if (!value.startsWith(parts[0]!) || !value.endsWith(parts.at(-1)!)) return false;
  let at = parts[0]!.length;
  const end = value.length - parts.at(-1)!.length;
  if (at > end) return false;
  for (const part of parts.slice(1, -1)) {
    const i = value.indexOf(part, at);
    if (i < 0 || i + part.length > end) return false;
    at = i + part.length;
  }
  return true;
}
