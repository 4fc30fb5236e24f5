import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { verifySigV4, type RawRequest } from '../../src/kms/sigv4.js';
import { signRequest } from '../../src/util/sigv4.js';

// @smithy/signature-v4 (the signer inside the AWS SDK) is the independent implementation: every
// signed request below is built by it, never by hand, and our verifier must agree with it.

/** The hash constructor the signer asks for, over node:crypto. */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {}
}

function toBuffer(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

const CREDS = { accessKeyId: 'AKIDVECTORSEALTEST', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const NOW = Date.UTC(2026, 0, 15, 12, 30, 45);

function signer(
  region = 'us-east-1',
  service = 'kms',
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = CREDS,
) {
  return new SignatureV4({ credentials, region, service, sha256: Sha256, applyChecksum: false });
}

interface Req {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

/** Signs with the library and turns the result into what our server receives. */
async function signed(req: Req, s = signer(), signingDate = new Date(NOW)): Promise<RawRequest> {
  const out = await s.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 41301,
      path: req.path,
      query: req.query ?? {},
      headers: req.headers,
      body: req.body,
    },
    { signingDate },
  );
  const query = new URLSearchParams(req.query ?? {}).toString().replace(/\+/g, '%20');
  return {
    method: req.method,
    url: query === '' ? req.path : `${req.path}?${query}`,
    rawHeaders: Object.entries(out.headers).flat(),
    body: Buffer.from(req.body, 'utf8'),
  };
}

const KMS_REQUEST: Req = {
  method: 'POST',
  path: '/',
  headers: { host: '127.0.0.1:41301', 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Encrypt' },
  body: JSON.stringify({ KeyId: 'alias/app', Plaintext: 'AAEC' }),
};

const expectations = {
  region: 'us-east-1',
  service: 'kms',
  now: NOW,
  secretFor: (id: string) => (id === CREDS.accessKeyId ? CREDS.secretAccessKey : undefined),
};

describe('verifySigV4 against @smithy/signature-v4', () => {
  it('accepts a KMS JSON request the library signed, and returns its access key id', async () => {
    expect(verifySigV4(await signed(KMS_REQUEST), expectations)).toEqual({ accessKeyId: CREDS.accessKeyId });
  });

  it('accepts a path with spaces and reserved characters and a query string, encoded as the SDK sends them', async () => {
    // The SDK's serializers put the path on the request already percent-encoded (RFC 3986); the signer encodes it once more.
    const rfc3986 = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const path = ['', 'kms', 'xks', 'v1', 'keys', 'key one+(a)*', 'metadata'].map(rfc3986).join('/');
    const req: Req = {
      method: 'GET',
      path,
      query: { b: 'two words', a: 'x/y', 'c*': "it's" },
      headers: { host: '127.0.0.1:41301', 'content-type': 'application/json', 'x-amz-target': 'Probe' },
      body: '',
    };
    expect(verifySigV4(await signed(req), expectations).accessKeyId).toBe(CREDS.accessKeyId);
  });

  it('accepts a request signed with a session token (the token header is signed too)', async () => {
    const raw = await signed(KMS_REQUEST, signer('us-east-1', 'kms', { ...CREDS, sessionToken: 'session-token-value' }));
    expect(raw.rawHeaders.map((h) => h.toLowerCase())).toContain('x-amz-security-token');
    expect(verifySigV4(raw, expectations).accessKeyId).toBe(CREDS.accessKeyId);
  });

  it('refuses a changed body, a changed signed header, another secret, region or service', async () => {
    const good = await signed(KMS_REQUEST);
    const body = { ...good, body: Buffer.from(JSON.stringify({ KeyId: 'alias/other', Plaintext: 'AAEC' })) };
    expect(() => verifySigV4(body, expectations)).toThrow(/signature/i);
    const target = { ...good, rawHeaders: good.rawHeaders.map((h) => (h === 'TrentService.Encrypt' ? 'TrentService.Decrypt' : h)) };
    expect(() => verifySigV4(target, expectations)).toThrow(/signature/i);
    expect(() => verifySigV4(good, { ...expectations, secretFor: () => 'another secret' })).toThrow(/signature/i);
    expect(() => verifySigV4(good, { ...expectations, region: 'eu-west-1' })).toThrow();
    expect(() => verifySigV4(good, { ...expectations, service: 'xks' })).toThrow();
    expect(() => verifySigV4(good, { ...expectations, secretFor: () => undefined })).toThrow();
  });

  it('refuses a request signed more than the allowed skew away, and accepts one just inside it', async () => {
    const old = await signed(KMS_REQUEST, signer(), new Date(NOW - 16 * 60_000));
    expect(() => verifySigV4(old, expectations)).toThrow(/expired|not yet valid/i);
    const early = await signed(KMS_REQUEST, signer(), new Date(NOW + 16 * 60_000));
    expect(() => verifySigV4(early, expectations)).toThrow(/expired|not yet valid/i);
    const inside = await signed(KMS_REQUEST, signer(), new Date(NOW - 14 * 60_000));
    expect(verifySigV4(inside, expectations).accessKeyId).toBe(CREDS.accessKeyId);
  });

  it('refuses a request that leaves a required header unsigned', async () => {
    const s = signer();
    const out = await s.sign(
      {
        method: 'POST',
        protocol: 'http:',
        hostname: '127.0.0.1',
        path: '/',
        query: {},
        headers: { host: '127.0.0.1:41301', 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Encrypt' },
        body: KMS_REQUEST.body,
      },
      { signingDate: new Date(NOW), unsignableHeaders: new Set(['x-amz-target']) },
    );
    const raw: RawRequest = {
      method: 'POST',
      url: '/',
      rawHeaders: Object.entries(out.headers).flat(),
      body: Buffer.from(KMS_REQUEST.body),
    };
    expect(() => verifySigV4(raw, expectations)).toThrow();
  });
});

describe('signRequest (what the XKS client sends) against @smithy/signature-v4', () => {
  it('writes the same Authorization header as the library for host;x-amz-date', async () => {
    const body = JSON.stringify({ requestMetadata: { awsPrincipalArn: 'arn:aws:iam::111122223333:user/x' }, plaintext: 'AAEC' });
    const path = '/kms/xks/v1/keys/k-1/encrypt';
    const ours = signRequest({
      method: 'POST',
      host: '127.0.0.1:41302',
      path,
      body: Buffer.from(body),
      ...CREDS,
      region: 'us-east-1',
      service: 'kms-xks-proxy',
      now: NOW,
    });
    const theirs = await signer('us-east-1', 'kms-xks-proxy').sign(
      { method: 'POST', protocol: 'https:', hostname: '127.0.0.1', path, query: {}, headers: { host: '127.0.0.1:41302' }, body },
      { signingDate: new Date(NOW) },
    );
    expect(ours['x-amz-date']).toBe(theirs.headers['x-amz-date']);
    expect(ours.authorization).toBe(theirs.headers['authorization']);
  });
});
