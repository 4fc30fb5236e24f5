import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cdiv, hsmAad } from '../../src/xks/aad.js';
import { authorize, matches } from '../../src/xks/authorization.js';
import { createXksCredential, validateXksConfig, type XksConfig } from '../../src/xks/config.js';
import { XksHsm } from '../../src/xks/hsm.js';
import { startXksProxy, type RunningXksProxy } from '../../src/xks/server.js';
import { createSoftHsm, describeSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { CLIENT_CN, createTestPki, type TestPki } from '../helpers/tls.js';
import { xksCall } from '../helpers/xks-client.js';

/**
 * vectorseal's own XKS proxy conformance suite, against a real SoftHSM2
 * token: every operation, every error the spec lists for it, SigV4 and mTLS
 * negatives, key usage, authorization, audit, credential rotation, and curl
 * --aws-sigv4 as the spec's Appendix D uses it. Faults the token cannot
 * produce (a slow or failing device) are injected into the pkcs11js calls.
 */

const run = promisify(execFile);
const PREFIX = '/tenant-a/kms/xks/v1';
const ALICE = 'arn:aws:iam::123456789012:user/Alice';
const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const meta = (over: Record<string, string> = {}) => ({
  awsPrincipalArn: ALICE,
  kmsKeyArn: KEY_ARN,
  kmsOperation: 'Encrypt',
  kmsRequestId: '4112f4d6-db54-4af4-ae30-c55a22a8dfae',
  kmsViaService: 'ebs',
  ...over,
});
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('XKS byte layouts', () => {
  it('computes the CDIV of the spec example (Appendix C)', () => {
    const value = cdiv({
      aad: Buffer.from('project=nile,department=marketing'),
      metadata: Buffer.from('key_version=1'),
      iv: Buffer.from('HMrlRw85cAJUd5Ax', 'base64'),
      ciphertext: Buffer.from('ghxkK1txeDNn3q8Y', 'base64'),
      tag: Buffer.from('vBxN2ncH1oEkR8WVXpmyYQ==', 'base64'),
    });
    expect(value.toString('hex')).toBe('a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7');
    expect(value.toString('base64')).toBe('qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=');
  });

  it('builds the HSM AAD with both lengths, so AAD and metadata cannot stand in for each other', () => {
    const x = Buffer.from('xyz');
    expect(hsmAad(x, undefined).toString('hex')).toBe('0003' + x.toString('hex') + '00');
    expect(hsmAad(undefined, x).toString('hex')).toBe('0000' + '03' + x.toString('hex'));
    expect(hsmAad(undefined, undefined).toString('hex')).toBe('000000');
  });

  it('matches authorization globs and rules without being fooled by inherited fields', () => {
    expect(matches('arn:aws:iam::*:user/Alice', ALICE)).toBe(true);
    expect(matches('arn:aws:iam::*:user/Al', ALICE)).toBe(false);
    expect(matches('a*b*c', 'abc')).toBe(true);
    expect(matches('a*a', 'a')).toBe(false);
    const rules = [{ name: 'alice', awsPrincipalArns: [ALICE] }];
    expect(authorize(rules, { operation: 'Encrypt', externalKeyId: 'k', metadata: { awsPrincipalArn: ALICE } })).toEqual({
      allowed: true,
      rule: 'alice',
    });
    const hostile = Object.create({ awsPrincipalArn: ALICE }) as Record<string, string>;
    expect(authorize(rules, { operation: 'Encrypt', externalKeyId: 'k', metadata: hostile }).allowed).toBe(false);
    expect(() =>
      validateXksConfig(JSON.parse('{"__proto__":{"uriPrefix":"/kms/xks/v1"},"region":"us-east-1","credentials":[]}')),
    ).toThrow();
  });
});

describeSoftHsm('XKS proxy conformance (SoftHSM2)', () => {
  let hsm: SoftHsm;
  let keys: XksHsm;
  let pki: TestPki;
  let dir: string;
  let proxy: RunningXksProxy;
  let mtlsProxy: RunningXksProxy;
  let config: XksConfig;
  const cred = createXksCredential();
  const restore: Array<() => void> = [];

  const call = (path: string, body: unknown, over: Partial<Parameters<typeof xksCall>[0]> = {}) =>
    xksCall({
      url: proxy.url,
      path: PREFIX + path,
      body,
      ca: pki.ca,
      accessKeyId: cred.accessKeyId,
      secretAccessKey: cred.secretAccessKey,
      ...over,
    });

  /** Replaces a pkcs11js method for one test (a device fault SoftHSM2 cannot produce). */
  const patch = (name: string, impl: (original: (...a: unknown[]) => unknown, ...a: unknown[]) => unknown) => {
    const p11 = keys.token.p11 as unknown as Record<string, unknown>;
    const own = Object.getOwnPropertyDescriptor(p11, name);
    const original = (p11[name] as (...a: unknown[]) => unknown).bind(p11);
    p11[name] = (...a: unknown[]) => impl(original, ...a);
    restore.push(() => (own ? Object.defineProperty(p11, name, own) : delete p11[name]));
  };

  beforeAll(async () => {
    hsm = createSoftHsm(['xks-keys']);
    pki = createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'vs-xks-'));
    const t = hsm.tokens['xks-keys']!;
    keys = await XksHsm.open({ module: hsm.module, token: t.label, pinEnv: t.pinEnv });
    await keys.createKey('both', 'encrypt-decrypt');
    await keys.createKey('enc-only', 'encrypt');
    await keys.createKey('dec-only', 'decrypt');
    await keys.createKey('neither', 'none');
    await keys.createKey('disabled', 'encrypt-decrypt');
    await keys.setKeyEnabled('disabled', false);
    config = {
      uriPrefix: PREFIX,
      region: 'us-east-1',
      credentials: [cred],
      authorization: [
        { name: 'alice-any', awsPrincipalArns: ['arn:aws:iam::123456789012:user/Alice'] },
        { name: 'ebs-decrypt', operations: ['Decrypt'], kmsViaServices: ['ebs'], awsPrincipalArns: ['arn:aws:iam::123456789012:role/*'] },
      ],
    };
    proxy = await startXksProxy({ hsm: keys, config, tls: pki.server, auditFile: join(dir, 'audit.log'), hsmTimeoutMs: 200 });
    mtlsProxy = await startXksProxy({
      hsm: keys,
      config,
      tls: pki.server,
      mtls: { ca: pki.ca, subjectCn: CLIENT_CN },
      auditFile: join(dir, 'audit-mtls.log'),
    });
  });
  afterEach(() => {
    for (const r of restore.splice(0).reverse()) r();
  });
  afterAll(async () => {
    await proxy?.close();
    await mtlsProxy?.close();
    await keys?.close();
    hsm?.cleanup();
    pki?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  describe('GetHealthStatus', () => {
    it('answers with the fleet and a deep check of the HSM', async () => {
      const r = await call('/health', { requestMetadata: { kmsRequestId: 'r1', kmsOperation: 'KmsHealthCheck' } });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ xksProxyFleetSize: 1, xksProxyVendor: 'vectorseal', ekmVendor: 'SoftHSM project' });
      const fleet = r.body['ekmFleetDetails'] as Array<Record<string, string>>;
      expect(fleet).toHaveLength(1);
      expect(fleet[0]!.healthStatus).toBe('ACTIVE');
    });

    it('is not subject to authorization, and reports UNAVAILABLE when the HSM fails', async () => {
      // Mallory may check health: the spec excludes it from secondary authorization.
      expect((await call('/health', { requestMetadata: { kmsRequestId: 'r2', kmsOperation: 'CreateCustomKeyStore' } })).status).toBe(200);
      patch('C_EncryptAsync', () => Promise.reject(new Error('CKR_DEVICE_ERROR:48')));
      const r = await call('/health', { requestMetadata: { kmsRequestId: 'r3', kmsOperation: 'KmsHealthCheck' } });
      expect(r.status).toBe(200);
      expect((r.body['ekmFleetDetails'] as Array<Record<string, string>>)[0]!.healthStatus).toBe('UNAVAILABLE');
    });

    it('AuthenticationFailedException, InvalidUriPathException, ThrottlingException apply to it too', async () => {
      expect((await call('/health', {}, { secretAccessKey: `${cred.secretAccessKey.slice(0, -2)}AA` })).body['errorName']).toBe(
        'AuthenticationFailedException',
      );
      expect((await call('/healthz', {})).body['errorName']).toBe('InvalidUriPathException');
    });
  });

  describe('GetKeyMetadata', () => {
    it('reports spec, usage and status for every kind of key', async () => {
      const md = async (id: string) => (await call(`/keys/${id}/metadata`, { requestMetadata: meta({ kmsOperation: 'CreateKey' }) })).body;
      expect(await md('both')).toEqual({ keySpec: 'AES_256', keyUsage: ['ENCRYPT', 'DECRYPT'], keyStatus: 'ENABLED' });
      expect(await md('enc-only')).toEqual({ keySpec: 'AES_256', keyUsage: ['ENCRYPT'], keyStatus: 'ENABLED' });
      expect(await md('dec-only')).toEqual({ keySpec: 'AES_256', keyUsage: ['DECRYPT'], keyStatus: 'ENABLED' });
      expect(await md('neither')).toEqual({ keySpec: 'AES_256', keyUsage: [], keyStatus: 'ENABLED' });
      expect(await md('disabled')).toEqual({ keySpec: 'AES_256', keyUsage: ['ENCRYPT', 'DECRYPT'], keyStatus: 'DISABLED' });
    });

    it('errors: ValidationException, KeyNotFoundException, AccessDeniedException, InvalidUriPathException', async () => {
      const missing = await call('/keys/both/metadata', { requestMetadata: { kmsOperation: 'CreateKey' } });
      expect([missing.status, missing.body['errorName']]).toEqual([400, 'ValidationException']);
      expect((await call('/keys/both/metadata', 'not json')).body['errorName']).toBe('ValidationException');
      const nf = await call('/keys/no-such-key/metadata', { requestMetadata: meta() });
      expect([nf.status, nf.body['errorName']]).toEqual([404, 'KeyNotFoundException']);
      const denied = await call('/keys/both/metadata', {
        requestMetadata: meta({ awsPrincipalArn: 'arn:aws:iam::999999999999:user/Mallory' }),
      });
      expect([denied.status, denied.body['errorName']]).toEqual([403, 'AccessDeniedException']);
      const badPath = await call('/keys/both/rotate', { requestMetadata: meta() });
      expect([badPath.status, badPath.body['errorName']]).toEqual([404, 'InvalidUriPathException']);
      const wrongPrefix = await xksCall({
        url: proxy.url,
        path: '/other/kms/xks/v1/keys/both/metadata',
        body: { requestMetadata: meta() },
        ca: pki.ca,
        ...cred,
      });
      expect([wrongPrefix.status, wrongPrefix.body['errorName']]).toEqual([404, 'InvalidUriPathException']);
    });
  });

  describe('Encrypt and Decrypt', () => {
    it('round-trips with AAD, returns a CDIV that matches an independent computation, and sizes per the spec', async () => {
      const plaintext = Buffer.alloc(4300, 0x61);
      const aad = Buffer.alloc(8192, 0x62);
      const enc = await call('/keys/both/encrypt', {
        requestMetadata: meta({ kmsOperation: 'GenerateDataKey' }),
        plaintext: b64(plaintext),
        additionalAuthenticatedData: b64(aad),
        encryptionAlgorithm: 'AES_GCM',
        ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
      });
      expect(enc.status).toBe(200);
      const ct = Buffer.from(enc.body['ciphertext'] as string, 'base64');
      const iv = Buffer.from(enc.body['initializationVector'] as string, 'base64');
      const tag = Buffer.from(enc.body['authenticationTag'] as string, 'base64');
      expect(ct).toHaveLength(4300);
      expect(iv).toHaveLength(12);
      expect(tag).toHaveLength(16);
      const expected = createHash('sha256')
        .update(Buffer.concat([aad, iv, ct, tag]))
        .digest('base64');
      expect(enc.body['ciphertextDataIntegrityValue']).toBe(expected);
      expect(enc.body['ciphertextMetadata']).toBeUndefined();
      const dec = await call('/keys/both/decrypt', {
        requestMetadata: meta({ kmsOperation: 'Decrypt' }),
        ciphertext: enc.body['ciphertext'],
        initializationVector: enc.body['initializationVector'],
        authenticationTag: enc.body['authenticationTag'],
        additionalAuthenticatedData: b64(aad),
        encryptionAlgorithm: 'AES_GCM',
      });
      expect(dec.status).toBe(200);
      expect(Buffer.from(dec.body['plaintext'] as string, 'base64').equals(plaintext)).toBe(true);
      // No CDIV asked, none given.
      const plain = await call('/keys/both/encrypt', {
        requestMetadata: meta(),
        plaintext: b64('Hello World!'),
        encryptionAlgorithm: 'AES_GCM',
      });
      expect(plain.body['ciphertextDataIntegrityValue']).toBeUndefined();
    });

    const sealed = async () => {
      const enc = await call('/keys/both/encrypt', {
        requestMetadata: meta(),
        plaintext: b64('Hello World!'),
        additionalAuthenticatedData: b64('project=nile'),
        encryptionAlgorithm: 'AES_GCM',
      });
      return {
        requestMetadata: meta({ kmsOperation: 'Decrypt' }),
        ciphertext: enc.body['ciphertext'] as string,
        initializationVector: enc.body['initializationVector'] as string,
        authenticationTag: enc.body['authenticationTag'] as string,
        additionalAuthenticatedData: b64('project=nile'),
        encryptionAlgorithm: 'AES_GCM',
      };
    };
    const flip = (s: string) => {
      const b = Buffer.from(s, 'base64');
      b[0]! ^= 1;
      return b.toString('base64');
    };

    it('Decrypt: InvalidCiphertextException for a changed ciphertext, tag, IV, AAD or ciphertextMetadata, and for bad sizes', async () => {
      const good = await sealed();
      for (const bad of [
        { ...good, ciphertext: flip(good.ciphertext) },
        { ...good, authenticationTag: flip(good.authenticationTag) },
        { ...good, initializationVector: flip(good.initializationVector) },
        { ...good, additionalAuthenticatedData: b64('project=amazon') },
        { ...good, additionalAuthenticatedData: undefined },
        { ...good, ciphertextMetadata: b64('v=1') },
        { ...good, initializationVector: b64(Buffer.alloc(8)) },
        { ...good, authenticationTag: b64(Buffer.alloc(12)) },
      ]) {
        const r = await call('/keys/both/decrypt', bad);
        expect([r.status, r.body['errorName']]).toEqual([400, 'InvalidCiphertextException']);
      }
      expect((await call('/keys/both/decrypt', good)).status).toBe(200);
    });

    it('Encrypt/Decrypt: ValidationException for missing or malformed input', async () => {
      const good = await sealed();
      const encBad = [
        { requestMetadata: meta(), encryptionAlgorithm: 'AES_GCM' },
        { requestMetadata: meta(), plaintext: 'not base64!', encryptionAlgorithm: 'AES_GCM' },
        { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_CBC' },
        { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM', ciphertextDataIntegrityValueAlgorithm: 'MD5' },
        {
          requestMetadata: { awsPrincipalArn: ALICE, kmsOperation: 'Encrypt', kmsRequestId: 'r' },
          plaintext: b64('x'),
          encryptionAlgorithm: 'AES_GCM',
        },
        { plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' },
      ];
      for (const body of encBad)
        expect((await call('/keys/both/encrypt', body)).body['errorName'], JSON.stringify(body)).toBe('ValidationException');
      for (const body of [
        { ...good, ciphertext: undefined },
        { ...good, encryptionAlgorithm: 'AES_GCM_SIV' },
        { ...good, ciphertextMetadata: b64(Buffer.alloc(21)) },
        { ...good, requestMetadata: { ...good.requestMetadata, kmsRequestId: 7 } },
      ]) {
        expect((await call('/keys/both/decrypt', body)).body['errorName']).toBe('ValidationException');
      }
    });

    it('key usage: InvalidKeyUsageException for an operation the key does not allow (enforced by the token)', async () => {
      const enc = (id: string) =>
        call(`/keys/${id}/encrypt`, { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
      const good = await sealed();
      const dec = (id: string) => call(`/keys/${id}/decrypt`, good);
      expect((await enc('enc-only')).status).toBe(200);
      expect((await enc('dec-only')).body['errorName']).toBe('InvalidKeyUsageException');
      expect((await enc('neither')).body['errorName']).toBe('InvalidKeyUsageException');
      expect((await dec('enc-only')).body['errorName']).toBe('InvalidKeyUsageException');
      expect((await dec('neither')).body['errorName']).toBe('InvalidKeyUsageException');
      // A decrypt-only key decrypts (here: a ciphertext made under another key fails to authenticate, which proves it got that far).
      expect((await dec('dec-only')).body['errorName']).toBe('InvalidCiphertextException');
      // An encrypt-only key with a CDIV request: no decrypt check is possible, the CDIV is still given.
      const cd = await call('/keys/enc-only/encrypt', {
        requestMetadata: meta(),
        plaintext: b64('x'),
        encryptionAlgorithm: 'AES_GCM',
        ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
      });
      expect(cd.body['ciphertextDataIntegrityValue']).toBeDefined();
    });

    it('InvalidStateException for a disabled key; KeyNotFoundException for an unknown one', async () => {
      const r = await call('/keys/disabled/encrypt', { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
      expect([r.status, r.body['errorName']]).toEqual([400, 'InvalidStateException']);
      const good = await sealed();
      expect((await call('/keys/disabled/decrypt', good)).body['errorName']).toBe('InvalidStateException');
      expect(
        (await call('/keys/nope/encrypt', { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' })).body[
          'errorName'
        ],
      ).toBe('KeyNotFoundException');
      expect((await call('/keys/nope/decrypt', good)).body['errorName']).toBe('KeyNotFoundException');
    });

    it('AccessDeniedException from the rules on awsPrincipalArn, kmsOperation/kmsViaService and the operation', async () => {
      const good = await sealed();
      const role = 'arn:aws:iam::123456789012:role/ebs-volume';
      // The role may decrypt via EBS only.
      expect(
        (await call('/keys/both/decrypt', { ...good, requestMetadata: meta({ awsPrincipalArn: role, kmsOperation: 'Decrypt' }) })).status,
      ).toBe(200);
      const viaS3 = await call('/keys/both/decrypt', { ...good, requestMetadata: meta({ awsPrincipalArn: role, kmsViaService: 's3' }) });
      expect([viaS3.status, viaS3.body['errorName']]).toEqual([403, 'AccessDeniedException']);
      const encrypt = await call('/keys/both/encrypt', {
        requestMetadata: meta({ awsPrincipalArn: role }),
        plaintext: b64('x'),
        encryptionAlgorithm: 'AES_GCM',
      });
      expect(encrypt.body['errorName']).toBe('AccessDeniedException');
      // The denial and the rule that would have applied are in the audit log.
      const log = await readFile(join(dir, 'audit.log'), 'utf8');
      expect(log).toContain('kmsViaService not in kmsViaServices');
    });

    it('UnsupportedOperationException past the supported size; 405 for GET on an API path', async () => {
      const big = await call('/keys/both/encrypt', {
        requestMetadata: meta(),
        plaintext: b64(Buffer.alloc(70_000)),
        encryptionAlgorithm: 'AES_GCM',
      });
      expect([big.status, big.body['errorName']]).toEqual([501, 'UnsupportedOperationException']);
      for (const path of ['/keys/both/encrypt', '/keys/both/decrypt', '/keys/both/metadata', '/health']) {
        expect((await call(path, {}, { method: 'GET' })).status).toBe(405);
      }
    });

    it(
      'ThrottlingException past the in-flight limit, DependencyTimeoutException for a slow HSM, ' + 'InternalException for a failing one',
      async () => {
        const delayed =
          (ms: number) =>
          (original: (...a: unknown[]) => unknown, ...a: unknown[]) =>
            new Promise((r) => setTimeout(r, ms)).then(() => original(...a));
        patch('C_EncryptAsync', delayed(400));
        const slow = await call('/keys/both/encrypt', { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
        expect([slow.status, slow.body['errorName']]).toEqual([503, 'DependencyTimeoutException']);
        for (const r of restore.splice(0).reverse()) r();
        await new Promise((r) => setTimeout(r, 450));

        const tight = await startXksProxy({
          hsm: keys,
          config,
          tls: pki.server,
          auditFile: join(dir, 'audit-tight.log'),
          maxInFlight: 1,
          hsmTimeoutMs: 1000,
        });
        try {
          patch('C_EncryptAsync', delayed(150));
          const body = { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' };
          const both = await Promise.all(
            [0, 1].map(() => xksCall({ url: tight.url, path: `${PREFIX}/keys/both/encrypt`, body, ca: pki.ca, ...cred })),
          );
          expect(both.map((r) => r.status).sort()).toEqual([200, 429]);
          expect(both.find((r) => r.status === 429)!.body['errorName']).toBe('ThrottlingException');
        } finally {
          await tight.close();
        }
        for (const r of restore.splice(0).reverse()) r();

        patch('C_EncryptAsync', () => Promise.reject(new Error('CKR_DEVICE_ERROR:48')));
        const failing = await call('/keys/both/encrypt', { requestMetadata: meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
        expect([failing.status, failing.body['errorName']]).toEqual([500, 'InternalException']);
      },
    );
  });

  describe('SigV4', () => {
    const body = { requestMetadata: meta({ kmsOperation: 'CreateKey' }) };
    const path = '/keys/both/metadata';

    it('refuses a wrong secret, a wrong service, an unknown access key, a missing signature and a skew beyond five minutes', async () => {
      const cases: Array<Partial<Parameters<typeof xksCall>[0]>> = [
        { secretAccessKey: createXksCredential().secretAccessKey },
        { service: 'kms' },
        { accessKeyId: createXksCredential().accessKeyId },
        { unsigned: true },
        { at: Date.now() - 5 * 60_000 - 30_000 },
        { at: Date.now() + 5 * 60_000 + 30_000 },
        { region: 'eu-west-1' },
      ];
      for (const c of cases) {
        const r = await call(path, body, c);
        expect([r.status, r.body['errorName']], JSON.stringify(c)).toEqual([401, 'AuthenticationFailedException']);
      }
      // Inside the window is fine.
      expect((await call(path, body, { at: Date.now() - 4 * 60_000 })).status).toBe(200);
    });

    it('refuses a body changed after signing', async () => {
      const u = new URL(proxy.url);
      const { signRequest } = await import('../../src/util/sigv4.js');
      const { request } = await import('node:https');
      const signed = Buffer.from(JSON.stringify(body));
      const sent = Buffer.from(JSON.stringify({ requestMetadata: meta({ kmsOperation: 'Tampered' }) }));
      const headers = signRequest({
        method: 'POST',
        host: u.host,
        path: PREFIX + path,
        body: signed,
        ...cred,
        region: 'us-east-1',
        service: 'kms-xks-proxy',
        now: Date.now(),
      });
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: u.hostname, port: u.port, path: PREFIX + path, method: 'POST', headers, ca: pki.ca, agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(sent);
      });
      expect(status).toBe(401);
    });

    it('rotates credentials: two work at once, the removed one stops, without restarting', async () => {
      const next = createXksCredential();
      proxy.reload({ ...config, credentials: [cred, next] });
      expect((await call(path, body)).status).toBe(200);
      expect((await call(path, body, next)).status).toBe(200);
      proxy.reload({ ...config, credentials: [next] });
      expect((await call(path, body)).status).toBe(401);
      expect((await call(path, body, next)).status).toBe(200);
      proxy.reload(config);
    });
  });

  describe('TLS', () => {
    const body = { requestMetadata: { kmsRequestId: 'tls', kmsOperation: 'KmsHealthCheck' } };
    const mcall = (over: Partial<Parameters<typeof xksCall>[0]>) =>
      xksCall({ url: mtlsProxy.url, path: `${PREFIX}/health`, body, ca: pki.ca, ...cred, ...over });

    it('mutual TLS: the CA-issued certificate with the configured CN is accepted', async () => {
      expect((await mcall({ cert: pki.client.cert, key: pki.client.key })).status).toBe(200);
    });

    it('mutual TLS: no certificate, a self-signed one, or another CN is refused at the connection', async () => {
      await expect(mcall({})).rejects.toThrow();
      await expect(mcall({ cert: pki.selfSigned.cert, key: pki.selfSigned.key })).rejects.toThrow();
      await expect(mcall({ cert: pki.wrongCn.cert, key: pki.wrongCn.key })).rejects.toThrow();
    });

    it('refuses TLS 1.1', async () => {
      await expect(call('/health', body, { maxVersion: 'TLSv1.1' })).rejects.toThrow();
      expect((await call('/health', body, { maxVersion: 'TLSv1.2' })).status).toBe(200);
    });
  });

  it('audit: every call logged with its request metadata, never the plaintext', async () => {
    const secret = 'the plaintext nobody may log';
    await call('/keys/both/encrypt', {
      requestMetadata: meta({ kmsRequestId: 'audit-me-1' }),
      plaintext: b64(secret),
      encryptionAlgorithm: 'AES_GCM',
    });
    await call(
      '/keys/both/encrypt',
      { requestMetadata: meta({ kmsRequestId: 'audit-me-2' }), plaintext: b64(secret), encryptionAlgorithm: 'AES_GCM' },
      { service: 'kms' },
    );
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { audit: Record<string, unknown> });
    const one = lines.find((l) => (l.audit['requestMetadata'] as Record<string, string> | undefined)?.['kmsRequestId'] === 'audit-me-1')!;
    expect(one.audit).toMatchObject({
      operation: 'Encrypt',
      externalKeyId: 'both',
      status: 200,
      accessKeyId: cred.accessKeyId,
      authorization: 'allowed by alice-any',
      requestMetadata: { awsPrincipalArn: ALICE, kmsKeyArn: KEY_ARN, kmsOperation: 'Encrypt', kmsViaService: 'ebs' },
    });
    expect(typeof one.audit['durationMs']).toBe('number');
    // A failed authentication is on record too (without metadata: the body was not trusted).
    expect(lines.some((l) => l.audit['errorName'] === 'AuthenticationFailedException')).toBe(true);
    const raw = await readFile(join(dir, 'audit.log'), 'utf8');
    expect(raw).not.toContain(secret);
    expect(raw).not.toContain(b64(secret));
    expect(raw).not.toContain(cred.secretAccessKey);
  });

  it('curl --aws-sigv4, as in the spec Appendix D, gets answers from the proxy', async () => {
    const req = join(dir, 'xks_encrypt_request.json');
    await writeFile(
      req,
      JSON.stringify({
        requestMetadata: {
          awsPrincipalArn: ALICE,
          kmsKeyArn: KEY_ARN,
          kmsOperation: 'GenerateDataKey',
          kmsRequestId: '4112f4d6-db54-4af4-ae30-c55a22a8dfae',
        },
        plaintext: 'SGVsbG8gV29ybGQh',
        encryptionAlgorithm: 'AES_GCM',
      }),
    );
    const health = join(dir, 'xks_get_health_status_request.json');
    await writeFile(
      health,
      JSON.stringify({ requestMetadata: { kmsOperation: 'KmsHealthCheck', kmsRequestId: '1124f4d6-db54-4af4-ae30-c55a22a8abcd' } }),
    );
    const curl = (file: string, uri: string) =>
      run('curl', [
        '--silent',
        '--show-error',
        '--cacert',
        pki.caFile,
        '--aws-sigv4',
        'aws:amz:us-east-1:kms-xks-proxy',
        '--user',
        `${cred.accessKeyId}:${cred.secretAccessKey}`,
        '-X',
        'POST',
        '-H',
        'Content-Type:application/json',
        '--data',
        `@${file}`,
        '-w',
        '\n%{response_code} %{time_total}',
        uri,
      ]);
    const enc = await curl(req, `${proxy.url}${PREFIX}/keys/both/encrypt`);
    const [json, status] = enc.stdout.split('\n');
    expect(status!.split(' ')[0]).toBe('200');
    const out = JSON.parse(json!) as Record<string, string>;
    expect(Buffer.from(out['ciphertext']!, 'base64')).toHaveLength(12);
    const h = await curl(health, `${proxy.url}${PREFIX}/health`);
    expect(h.stdout.split('\n')[1]!.split(' ')[0]).toBe('200');
    expect(JSON.parse(h.stdout.split('\n')[0]!)).toMatchObject({ xksProxyVendor: 'vectorseal' });
    // And the decrypt of what curl got back.
    const dec = await call('/keys/both/decrypt', {
      requestMetadata: meta({ kmsOperation: 'Decrypt' }),
      ciphertext: out['ciphertext'],
      initializationVector: out['initializationVector'],
      authenticationTag: out['authenticationTag'],
      encryptionAlgorithm: 'AES_GCM',
    });
    expect(Buffer.from(dec.body['plaintext'] as string, 'base64').toString()).toBe('Hello World!');
  });
});
