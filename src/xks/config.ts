import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';

/**
 * The XKS proxy's configuration: its URI path, the SigV4 credentials AWS KMS
 * (or vectorseal's xks KEK provider) signs with, and optional authorization
 * rules on the request metadata. The keys themselves live in the HSM, not
 * here. The file is the administrator's, outside any data directory; it holds
 * secrets, so it is written mode 0600.
 */

export interface XksCredential {
  /** 20-30 characters, A-Z and 2-7 (the spec's alphabet). */
  accessKeyId: string;
  /** 43-64 characters of A-Z a-z 0-9 + / =. */
  secretAccessKey: string;
}

/** One allow rule: a request is allowed when every field the rule names matches (`*` matches any run of characters). */
export interface XksRule {
  /** Shown in the audit log for the rule that allowed a request. */
  name?: string;
  /** XKS operations: GetKeyMetadata, Encrypt, Decrypt. */
  operations?: string[];
  /** External key ids. */
  keys?: string[];
  awsPrincipalArns?: string[];
  kmsOperations?: string[];
  kmsKeyArns?: string[];
  kmsViaServices?: string[];
  awsSourceVpcs?: string[];
  awsSourceVpces?: string[];
}

export interface XksConfig {
  /** `XksProxyUriPath`: `[/<prefix>]/kms/xks/v1`, at most 128 characters of a-z A-Z 0-9 / - _. */
  uriPrefix: string;
  /** The region AWS KMS puts in the credential scope. */
  region: string;
  /** Two at once during a rotation; at least one. */
  credentials: XksCredential[];
  /** Secondary authorization; absent means every authenticated request is allowed. GetHealthStatus is never subject to it. */
  authorization?: XksRule[];
}

const URI_PREFIX = /^(\/[A-Za-z0-9_-]+)*\/kms\/xks\/v1$/;
const ACCESS_KEY_ID = /^[A-Z2-7]{20,30}$/;
const SECRET = /^[A-Za-z0-9+/=]{43,64}$/;
const RULE_FIELDS = [
  'operations',
  'keys',
  'awsPrincipalArns',
  'kmsOperations',
  'kmsKeyArns',
  'kmsViaServices',
  'awsSourceVpcs',
  'awsSourceVpces',
] as const;

/** Checks a configuration and returns a clean copy (own, known fields only). */
export function validateXksConfig(raw: unknown): XksConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError('XKS config expected a JSON object');
  const c = raw as Record<string, unknown>;
  const uriPrefix = own(c, 'uriPrefix');
  if (typeof uriPrefix !== 'string' || uriPrefix.length > 128 || !URI_PREFIX.test(uriPrefix)) {
    throw new InvalidArgumentError('"uriPrefix" expected [/<prefix>]/kms/xks/v1, at most 128 characters of a-z A-Z 0-9 / - _');
  }
  const region = own(c, 'region');
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,32}$/.test(region))
    throw new InvalidArgumentError('"region" expected a region name such as us-east-1');
  const creds = own(c, 'credentials');
  if (!Array.isArray(creds) || creds.length === 0)
    throw new InvalidArgumentError('"credentials" expected at least one { accessKeyId, secretAccessKey }');
  const seen = new Set<string>();
  const credentials = creds.map((k, i): XksCredential => {
    const accessKeyId = typeof k === 'object' && k !== null ? own(k as Record<string, unknown>, 'accessKeyId') : undefined;
    const secretAccessKey = typeof k === 'object' && k !== null ? own(k as Record<string, unknown>, 'secretAccessKey') : undefined;
    if (typeof accessKeyId !== 'string' || !ACCESS_KEY_ID.test(accessKeyId)) {
      throw new InvalidArgumentError(`credentials[${i}].accessKeyId expected 20-30 characters of A-Z and 2-7`);
    }
    if (typeof secretAccessKey !== 'string' || !SECRET.test(secretAccessKey)) {
      throw new InvalidArgumentError(`credentials[${i}].secretAccessKey expected 43-64 characters of A-Z a-z 0-9 + / =`);
    }
    if (seen.has(accessKeyId)) throw new InvalidArgumentError(`credentials[${i}].accessKeyId ${accessKeyId} appears twice`);
    seen.add(accessKeyId);
    return { accessKeyId, secretAccessKey };
  });
  const config: XksConfig = { uriPrefix, region, credentials };
  const rules = own(c, 'authorization');
  if (rules !== undefined) {
    if (!Array.isArray(rules)) throw new InvalidArgumentError('"authorization" expected an array of rules');
    config.authorization = rules.map((r, i) => validateRule(r, i));
  }
  return config;
}

function validateRule(raw: unknown, i: number): XksRule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new InvalidArgumentError(`authorization[${i}] expected an object`);
  const r = raw as Record<string, unknown>;
  const rule: XksRule = {};
  const name = own(r, 'name');
  if (name !== undefined) {
    if (typeof name !== 'string' || name.length > 128)
      throw new InvalidArgumentError(`authorization[${i}].name expected a string of at most 128 characters`);
    rule.name = name;
  }
  for (const field of RULE_FIELDS) {
    const v = own(r, field);
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length === 0 || v.some((p) => typeof p !== 'string' || p.length === 0 || p.length > 2048)) {
      throw new InvalidArgumentError(`authorization[${i}].${field} expected a non-empty array of patterns`);
    }
    rule[field] = [...(v as string[])];
  }
  return rule;
}

/** An own property only: a `__proto__` key or an inherited field never configures anything. */
function own(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

/** Reads and checks a configuration file. */
export async function loadXksConfig(file: string): Promise<XksConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new InvalidArgumentError(`XKS config ${file} is not readable`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError(`XKS config ${file} is not valid JSON`, { cause });
  }
  return validateXksConfig(parsed);
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A fresh credential: a 26-character access key id and a 256-bit secret (Base64, 44 characters). */
export function createXksCredential(): XksCredential {
  let accessKeyId = '';
  for (const byte of randomBytes(26)) accessKeyId += BASE32[byte % 32];
  return { accessKeyId, secretAccessKey: randomBytes(32).toString('base64') };
}
