import { timingSafeEqual } from 'node:crypto';
import { defaultHmacSha256 } from '../crypto/hmac.js';
import {
  canonicalRequest,
  collectHeaders,
  sha256Hex,
  signingKey,
  stringToSign,
  SigV4EncodingError,
  SIGV4_ALGORITHM,
} from '../util/sigv4.js';
import { kmsErrors } from './errors.js';

/** The parts of an HTTP request SigV4 covers, exactly as received. */
export interface RawRequest {
  method: string;
  /** Path and query as sent on the request line. */
  url: string;
  /** Node's `rawHeaders`: alternating names and values, duplicates kept. */
  rawHeaders: string[];
  body: Buffer;
  /** `collectHeaders(rawHeaders)`, when the caller already built it: the key service acts on the same map it verified. */
  headers?: Map<string, string>;
}

export interface SigV4Expectations {
  region: string;
  service: string;
  /** Epoch milliseconds used for the clock-skew check. */
  now: number;
  /** Finds the secret of an access key id, or undefined when it is unknown. */
  secretFor(accessKeyId: string): string | undefined;
  /**
   * Largest accepted distance between the signing time and `now`. Default
   * MAX_CLOCK_SKEW_MS (AWS's 15 minutes); the XKS spec asks for 5.
   */
  maxSkewMs?: number;
  /** Headers that must be in SignedHeaders. Default REQUIRED_SIGNED_HEADERS (the key service's). */
  requiredSignedHeaders?: readonly string[];
}

/** Requests signed further than this from the service's clock are refused, as AWS does. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

const ALGORITHM = SIGV4_ALGORITHM;

/** Headers every key-service request must sign (the KMS JSON protocol's operation travels in x-amz-target). */
export const REQUIRED_SIGNED_HEADERS: readonly string[] = ['content-type', 'host', 'x-amz-date', 'x-amz-target'];

/**
 * Verifies an AWS Signature Version 4 `Authorization` header by rebuilding the
 * canonical request from the raw request. Returns the access key id on success;
 * throws the AWS exception a real endpoint would return otherwise.
 */
export function verifySigV4(req: RawRequest, expect: SigV4Expectations): { accessKeyId: string } {
  const headers = req.headers ?? collectHeaders(req.rawHeaders);
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
  const maxSkew = expect.maxSkewMs ?? MAX_CLOCK_SKEW_MS;
  if (Number.isNaN(signedAt) || Math.abs(expect.now - signedAt) > maxSkew) {
    throw kmsErrors.invalidSignature(
      `Signature expired or not yet valid: ${amzDate} is more than ${maxSkew / 60_000} minutes from the server time`,
    );
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
  for (const name of expect.requiredSignedHeaders ?? REQUIRED_SIGNED_HEADERS) {
    if (!signed.includes(name)) throw kmsErrors.invalidSignature(`The ${name} header must be signed`);
  }

  const bodyHash = sha256Hex(req.body);
  const declaredHash = headers.get('x-amz-content-sha256');
  if (declaredHash !== undefined && declaredHash !== 'UNSIGNED-PAYLOAD' && declaredHash !== bodyHash) {
    throw kmsErrors.invalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.");
  }

  const { path, query } = splitUrl(req.url);
  let expected: Buffer;
  try {
    const canonical = canonicalRequest({ method: req.method, path, query, signedHeaders: signed, headers, bodyHash });
    const scope = { date: scopeDate!, region: scopeRegion!, service: scopeService! };
    // One native HMAC call when the addon is built (no Hmac object per request); the same bytes as createHmac otherwise.
    expected = defaultHmacSha256()(signingKey(secret, scope), Buffer.from(stringToSign(amzDate, scope, canonical), 'utf8'));
  } catch (err) {
    if (err instanceof SigV4EncodingError) throw kmsErrors.invalidSignature(err.message);
    throw err;
  }

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
  // Fields as `name=value` between commas; a repeated name keeps its last value, unknown names are ignored.
  let credential: string | undefined;
  let signedHeaders: string | undefined;
  let signature: string | undefined;
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === 'Credential') credential = part.slice(eq + 1).trim();
    else if (name === 'SignedHeaders') signedHeaders = part.slice(eq + 1).trim();
    else if (name === 'Signature') signature = part.slice(eq + 1).trim();
  }
  if (!credential || !signedHeaders || !signature) {
    throw kmsErrors.incompleteSignature('Authorization header requires Credential, SignedHeaders and Signature');
  }
  const names = signedHeaders.split(';');
  // The signer emits names lowercased and sorted; anything else cannot have come from a conforming client.
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    if (n === '' || n !== n.toLowerCase() || (i > 0 && names[i - 1]! > n)) {
      throw kmsErrors.incompleteSignature('SignedHeaders must be lowercase and sorted');
    }
  }
  return { credential, signedHeaders: names, signature };
}

function parseAmzDate(v: string): number {
  return Date.UTC(+v.slice(0, 4), +v.slice(4, 6) - 1, +v.slice(6, 8), +v.slice(9, 11), +v.slice(11, 13), +v.slice(13, 15));
}

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}
