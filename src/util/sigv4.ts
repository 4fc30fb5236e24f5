import { createHmac, hash } from 'node:crypto';

/**
 * The parts of AWS Signature Version 4 that signing and verifying share: the
 * canonical request, the string to sign and the signing-key derivation. The
 * key service and the XKS proxy verify with it (src/kms/sigv4.ts); the XKS
 * KEK provider signs with it. One implementation, so the two sides cannot
 * drift apart.
 */

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

export interface CanonicalParts {
  method: string;
  /** The path as sent on the request line (already percent-encoded once). */
  path: string;
  /** The query string as sent, without '?'. */
  query: string;
  /** Signed header names, lowercase and sorted. */
  signedHeaders: string[];
  /** Header values by lowercase name (trimmed, inner whitespace collapsed). */
  headers: Map<string, string>;
  /** Lowercase hex SHA-256 of the body. */
  bodyHash: string;
}

/** Thrown for a query string that is not validly percent-encoded. */
export class SigV4EncodingError extends Error {}

/** The canonical request. Throws when a signed header is missing (the caller maps it to its protocol's error). */
export function canonicalRequest(parts: CanonicalParts): string {
  // Built by concatenation: on the key service's hot path the arrays of map/join cost more than the strings.
  let canonicalHeaders = '';
  for (const name of parts.signedHeaders) {
    const value = parts.headers.get(name);
    if (value === undefined) throw new SigV4EncodingError(`Signed header "${name}" is missing from the request`);
    canonicalHeaders += `${name}:${value}\n`;
  }
  const head = `${parts.method.toUpperCase()}\n${canonicalPath(parts.path)}\n${canonicalQuery(parts.query)}\n`;
  return `${head}${canonicalHeaders}\n${parts.signedHeaders.join(';')}\n${parts.bodyHash}`;
}

/**
 * Derived signing keys, by secret and scope (day/region/service): the four
 * HMACs of the derivation change once a day, not per request. The secret is
 * part of the cache key so a rotated secret never meets a stale derivation;
 * the map is bounded and simply emptied when full.
 */
const signingKeys = new Map<string, Buffer>();
const MAX_SIGNING_KEYS = 4096;

/** The SigV4 signing key of a secret and scope (day/region/service), derived once and cached. */
export function signingKey(secret: string, scope: { date: string; region: string; service: string }): Buffer {
  const id = `${scope.date}\0${scope.region}\0${scope.service}\0${secret}`;
  let key = signingKeys.get(id);
  if (key === undefined) {
    key = hmac(hmac(hmac(hmac(`AWS4${secret}`, scope.date), scope.region), scope.service), 'aws4_request');
    if (signingKeys.size >= MAX_SIGNING_KEYS) signingKeys.clear();
    signingKeys.set(id, key);
  }
  return key;
}

/** The signature (raw bytes) of a canonical request under a secret and scope. */
export function signature(
  secret: string,
  amzDate: string,
  scope: { date: string; region: string; service: string },
  canonical: string,
): Buffer {
  return hmac(signingKey(secret, scope), stringToSign(amzDate, scope, canonical));
}

/** The string to sign of a canonical request: algorithm, time, credential scope and the canonical request's SHA-256. */
export function stringToSign(amzDate: string, scope: { date: string; region: string; service: string }, canonical: string): string {
  const scopeText = `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
  return `${SIGV4_ALGORITHM}\n${amzDate}\n${scopeText}\n${hash('sha256', canonical, 'hex')}`;
}

/** Anything but printable ASCII and lone spaces (what `\s+` could match beyond a single space). */
const MAYBE_COLLAPSE = /[^\x21-\x7e ]| {2}/;

/** Header values keyed by lowercase name, duplicates joined by commas, whitespace trimmed and collapsed. */
export function collectHeaders(raw: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const given = raw[i + 1]!;
    // Printable ASCII with single spaces has nothing to collapse: the common value skips the replace.
    const value = MAYBE_COLLAPSE.test(given) ? given.trim().replace(/\s+/g, ' ') : given.trim();
    const prior = out.get(name);
    out.set(name, prior === undefined ? value : `${prior},${value}`);
  }
  return out;
}

export interface SignInput {
  method: string;
  /** Host header value (host[:port]). */
  host: string;
  path: string;
  body: Buffer;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  service: string;
  /** Epoch milliseconds. */
  now: number;
}

/** Signs a request with `host;x-amz-date` (what AWS KMS signs for an XKS proxy). Returns the headers to send. */
export function signRequest(input: SignInput): { 'x-amz-date': string; authorization: string } {
  const amzDate = new Date(input.now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const signedHeaders = ['host', 'x-amz-date'];
  const headers = new Map([
    ['host', input.host],
    ['x-amz-date', amzDate],
  ]);
  const canonical = canonicalRequest({
    method: input.method,
    path: input.path,
    query: '',
    signedHeaders,
    headers,
    bodyHash: sha256Hex(input.body),
  });
  const sig = signature(input.secretAccessKey, amzDate, { date, region: input.region, service: input.service }, canonical).toString('hex');
  return {
    'x-amz-date': amzDate,
    authorization:
      `${SIGV4_ALGORITHM} Credential=${input.accessKeyId}/${date}/${input.region}/${input.service}` +
      `/aws4_request, SignedHeaders=${signedHeaders.join(';')}, Signature=${sig}`,
  };
}

/** RFC 3986 encoding as SigV4 defines it (unreserved characters kept). */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// Services other than S3 sign the path encoded twice: the client encodes it
// once for the request line, then the signer encodes that again.
function canonicalPath(path: string): string {
  if (path === '' || path === '/') return '/';
  return path
    .split('/')
    .map((segment) => uriEncode(segment))
    .join('/');
}

function canonicalQuery(query: string): string {
  if (query === '') return '';
  const pairs = query.split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const k = safeDecode(eq < 0 ? kv : kv.slice(0, eq));
    const v = eq < 0 ? '' : safeDecode(kv.slice(eq + 1));
    return [uriEncode(k), uriEncode(v)] as const;
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new SigV4EncodingError('The query string is not validly percent-encoded');
  }
}

/** Lowercase hex SHA-256 (one-shot `crypto.hash`: no Hash object per call). */
export function sha256Hex(data: Buffer): string {
  return hash('sha256', data, 'hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
