import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { kmsErrors } from './errors.js';

/** The parts of an HTTP request SigV4 covers, exactly as received. */
export interface RawRequest {
  method: string;
  /** Path and query as sent on the request line. */
  url: string;
  /** Node's `rawHeaders`: alternating names and values, duplicates kept. */
  rawHeaders: string[];
  body: Buffer;
}

export interface SigV4Expectations {
  region: string;
  service: string;
  /** Epoch milliseconds used for the clock-skew check. */
  now: number;
  /** Finds the secret of an access key id, or undefined when it is unknown. */
  secretFor(accessKeyId: string): string | undefined;
}

/** Requests signed further than this from the service's clock are refused, as AWS does. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

const ALGORITHM = 'AWS4-HMAC-SHA256';

/** Headers every request must sign. */
export const REQUIRED_SIGNED_HEADERS = ['content-type', 'host', 'x-amz-date', 'x-amz-target'] as const;

/**
 * Derived signing keys, by access key, secret and scope (day/region/service):
 * the four HMACs of the derivation change once a day, not per request. The
 * secret is part of the cache key so a rotated secret never meets a stale
 * derivation; the map is bounded and simply emptied when full.
 */
const signingKeys = new Map<string, Buffer>();
const MAX_SIGNING_KEYS = 4096;

function signingKey(accessKeyId: string, secret: string, scope: string): Buffer {
  const id = `${accessKeyId}\0${scope}\0${secret}`;
  let key = signingKeys.get(id);
  if (key === undefined) {
    const [day, region, service] = scope.split('/') as [string, string, string];
    key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
    if (signingKeys.size >= MAX_SIGNING_KEYS) signingKeys.clear();
    signingKeys.set(id, key);
  }
  return key;
}

/**
 * Verifies an AWS Signature Version 4 `Authorization` header by rebuilding the
 * canonical request from the raw request. Returns the access key id on success;
 * throws the AWS exception a real endpoint would return otherwise.
 */
export function verifySigV4(req: RawRequest, expect: SigV4Expectations): { accessKeyId: string } {
  const headers = collectHeaders(req.rawHeaders);
  const authorization = headers.get('authorization');
  if (authorization === undefined) {
    throw kmsErrors.missingAuthentication('Missing Authentication Token');
  }
  const auth = parseAuthorization(authorization);

  const amzDate = headers.get('x-amz-date');
  if (amzDate === undefined || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw kmsErrors.invalidSignature('Authorization requires a valid X-Amz-Date header');
  }
  const signedAt = parseAmzDate(amzDate);
  if (Number.isNaN(signedAt) || Math.abs(expect.now - signedAt) > MAX_CLOCK_SKEW_MS) {
    throw kmsErrors.invalidSignature(`Signature expired or not yet valid: ${amzDate} is more than 15 minutes from the server time`);
  }

  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator, ...rest] = auth.credential.split('/');
  if (!accessKeyId || rest.length > 0 || terminator !== 'aws4_request') {
    throw kmsErrors.incompleteSignature('Credential must have the form <key>/<date>/<region>/<service>/aws4_request');
  }
  const secret = expect.secretFor(accessKeyId);
  if (secret === undefined) {
    throw kmsErrors.unrecognizedClient('The security token included in the request is invalid.');
  }
  if (scopeDate !== amzDate.slice(0, 8)) {
    throw kmsErrors.invalidSignature('Credential scope date does not match X-Amz-Date');
  }
  if (scopeRegion !== expect.region || scopeService !== expect.service) {
    throw kmsErrors.invalidSignature(`Credential should be scoped to region "${expect.region}" and service "${expect.service}"`);
  }

  const signed = auth.signedHeaders;
  // Unsigned, any of these could be changed in flight: the operation (x-amz-target),
  // how the body is read (content-type), the endpoint or the time.
  for (const name of REQUIRED_SIGNED_HEADERS) {
    if (!signed.includes(name)) throw kmsErrors.invalidSignature(`The ${name} header must be signed`);
  }

  const bodyHash = sha256Hex(req.body);
  const declaredHash = headers.get('x-amz-content-sha256');
  if (declaredHash !== undefined && declaredHash !== 'UNSIGNED-PAYLOAD' && declaredHash !== bodyHash) {
    throw kmsErrors.invalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.");
  }

  const canonicalHeaders = signed
    .map((name) => {
      const value = headers.get(name);
      if (value === undefined) throw kmsErrors.invalidSignature(`Signed header "${name}" is missing from the request`);
      return `${name}:${value}\n`;
    })
    .join('');
  const { path, query } = splitUrl(req.url);
  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalPath(path),
    canonicalQuery(query),
    canonicalHeaders,
    signed.join(';'),
    bodyHash,
  ].join('\n');

  const scope = `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(Buffer.from(canonicalRequest, 'utf8'))].join('\n');
  const expected = hmac(signingKey(accessKeyId, secret, scope), stringToSign);

  const given = /^[0-9a-f]{64}$/.test(auth.signature) ? Buffer.from(auth.signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw kmsErrors.invalidSignature(
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return { accessKeyId };
}

interface ParsedAuthorization {
  credential: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(value: string): ParsedAuthorization {
  if (!value.startsWith(`${ALGORITHM} `)) {
    throw kmsErrors.incompleteSignature(`Authorization header must use ${ALGORITHM}`);
  }
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    throw kmsErrors.incompleteSignature('Authorization header requires Credential, SignedHeaders and Signature');
  }
  const names = signedHeaders.split(';');
  // The signer emits names lowercased and sorted; anything else cannot have come from a conforming client.
  const sorted = [...names].sort();
  if (names.some((n, i) => n !== sorted[i] || n === '' || n !== n.toLowerCase())) {
    throw kmsErrors.incompleteSignature('SignedHeaders must be lowercase and sorted');
  }
  return { credential, signedHeaders: names, signature };
}

/** Header values keyed by lowercase name, duplicates joined by commas, whitespace trimmed and collapsed. */
function collectHeaders(raw: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!.trim().replace(/\s+/g, ' ');
    const prior = out.get(name);
    out.set(name, prior === undefined ? value : `${prior},${value}`);
  }
  return out;
}

function parseAmzDate(v: string): number {
  return Date.UTC(+v.slice(0, 4), +v.slice(4, 6) - 1, +v.slice(6, 8), +v.slice(9, 11), +v.slice(11, 13), +v.slice(13, 15));
}

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
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
    throw kmsErrors.invalidSignature('The query string is not validly percent-encoded');
  }
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
