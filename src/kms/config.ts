import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';

/**
 * One statement of a principal's policy. A request is allowed when any
 * statement matches it: the operation is listed, the key is listed, and every
 * encryption-context condition holds.
 */
export interface PolicyStatement {
  /** Operation names (`Decrypt`, `ReEncryptFrom`, `ReEncryptTo`, `ReEncrypt*`, ...) or `*`. */
  operations: string[];
  /** Key ids, key ARNs, alias names (`alias/x`), alias ARNs, or `*`. Default `*`. */
  keys?: string[];
  /**
   * Conditions on the request's encryption context: each named context key
   * must be present and equal to the string, or to one of the listed strings.
   * A statement with conditions never matches a request without a context.
   */
  encryptionContext?: Record<string, string | string[]>;
}

/** An access key and what it may do. */
export interface PrincipalConfig {
  /** A human-readable name for audit lines. */
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry this X-Amz-Security-Token. */
  sessionToken?: string;
  policy: PolicyStatement[];
}

/** The key service's configuration file. */
export interface KeyServiceConfig {
  region: string;
  /** The 12-digit account id used in ARNs. */
  accountId: string;
  principals: PrincipalConfig[];
}

/** Reads and validates a configuration file. */
export async function loadKeyServiceConfig(file: string): Promise<KeyServiceConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new InvalidArgumentError(`key service config ${file} is not readable JSON`, { cause });
  }
  return validateKeyServiceConfig(parsed);
}

/** Checks a configuration object, so a bad file fails at start rather than on the first request. */
export function validateKeyServiceConfig(value: unknown): KeyServiceConfig {
  const c = value as Partial<KeyServiceConfig> | null;
  if (typeof c !== 'object' || c === null) throw new InvalidArgumentError('key service config expected an object');
  if (typeof c.region !== 'string' || !/^[a-z0-9-]{1,32}$/.test(c.region)) {
    throw new InvalidArgumentError('key service config "region" expected a region name such as "us-east-1"');
  }
  if (typeof c.accountId !== 'string' || !/^\d{12}$/.test(c.accountId)) {
    throw new InvalidArgumentError('key service config "accountId" expected 12 digits');
  }
  if (!Array.isArray(c.principals)) throw new InvalidArgumentError('key service config "principals" expected an array');
  const seen = new Set<string>();
  c.principals.forEach((p, i) => {
    const where = `key service config "principals[${i}]"`;
    if (typeof p?.name !== 'string' || p.name === '') throw new InvalidArgumentError(`${where}.name expected a non-empty string`);
    if (typeof p.accessKeyId !== 'string' || !/^[A-Za-z0-9]{8,128}$/.test(p.accessKeyId)) {
      throw new InvalidArgumentError(`${where}.accessKeyId expected 8-128 alphanumerics`);
    }
    if (seen.has(p.accessKeyId)) throw new InvalidArgumentError(`${where}.accessKeyId is a duplicate`);
    seen.add(p.accessKeyId);
    if (typeof p.secretAccessKey !== 'string' || p.secretAccessKey.length < 16) {
      throw new InvalidArgumentError(`${where}.secretAccessKey expected a string of at least 16 characters`);
    }
    if (p.sessionToken !== undefined && typeof p.sessionToken !== 'string') {
      throw new InvalidArgumentError(`${where}.sessionToken expected a string`);
    }
    if (!Array.isArray(p.policy)) throw new InvalidArgumentError(`${where}.policy expected an array of statements`);
    p.policy.forEach((s, j) => checkStatement(s, `${where}.policy[${j}]`));
  });
  return c as KeyServiceConfig;
}

function checkStatement(s: PolicyStatement, where: string): void {
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (typeof s !== 'object' || s === null || !isStrings(s.operations)) {
    throw new InvalidArgumentError(`${where}.operations expected an array of strings`);
  }
  if (s.keys !== undefined && !isStrings(s.keys)) throw new InvalidArgumentError(`${where}.keys expected an array of strings`);
  if (s.encryptionContext !== undefined) {
    if (typeof s.encryptionContext !== 'object' || s.encryptionContext === null) {
      throw new InvalidArgumentError(`${where}.encryptionContext expected an object`);
    }
    for (const [k, v] of Object.entries(s.encryptionContext)) {
      if (typeof v !== 'string' && !isStrings(v)) {
        throw new InvalidArgumentError(`${where}.encryptionContext["${k}"] expected a string or an array of strings`);
      }
    }
  }
}
