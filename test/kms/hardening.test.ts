import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { encodeEncryptionContext, openCiphertext, parseCiphertextHeader, sealCiphertext } from '../../src/kms/ciphertext.js';
import { startKeyService, type KeyServiceConfig } from '../../src/kms/index.js';
import { spawnCli } from '../helpers/cli.js';
import { ADMIN, READER, REGION, startHarness, testConfig, type Harness } from './helpers.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const hmac = (k: string | Buffer, s: string) => createHmac('sha256', k).update(s).digest();

/** Signs by hand over exactly `signed` headers, so tests can send what no conforming client would. */
function sign(base: string, body: string, target: string, signed: string[]) {
  const url = new URL(base);
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': 'application/x-amz-json-1.1',
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-target': `TrentService.${target}`,
  };
  const names = [...signed].sort();
  const canonical = ['POST', '/', '', names.map((k) => `${k}:${headers[k]}\n`).join(''), names.join(';'), sha256(body)].join('\n');
  const scope = `${day}/${REGION}/kms/aws4_request`;
  let key: Buffer = hmac(`AWS4${ADMIN.secretAccessKey}`, day);
  for (const part of [REGION, 'kms', 'aws4_request']) key = hmac(key, part);
  const signature = hmac(key, ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n')).toString('hex');
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${ADMIN.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, ` + `Signature=${signature}`;
  return headers;
}

async function wireError(url: string, headers: Record<string, string>, body: string): Promise<string> {
  const res = await fetch(`${url}/`, { method: 'POST', headers, body });
  return ((await res.json()) as { __type?: string }).__type ?? `status ${res.status}`;
}

async function auditLines(file: string): Promise<Record<string, unknown>[]> {
  return (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { audit: Record<string, unknown> }).audit);
}

describe('SigV4 signed headers', () => {
  let h: Harness;
  let keyId: string;
  beforeAll(async () => {
    h = await startHarness();
    keyId = (await h.client().send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  });
  afterAll(async () => h.cleanup());

  it('a request whose SignedHeaders omit x-amz-target is rejected (its operation could be swapped)', async () => {
    const body = JSON.stringify({ KeyId: keyId, KeySpec: 'AES_256' });
    const all = ['content-type', 'host', 'x-amz-date', 'x-amz-target'];
    // Signed over everything: accepted.
    const ok = await fetch(`${h.service.url}/`, {
      method: 'POST',
      headers: sign(h.service.url, body, 'GenerateDataKeyWithoutPlaintext', all),
      body,
    });
    expect(ok.status).toBe(200);
    // Signed over host and date only, then the target changed: the attack the requirement stops.
    const headers = sign(h.service.url, body, 'GenerateDataKeyWithoutPlaintext', ['host', 'x-amz-date']);
    headers['x-amz-target'] = 'TrentService.GenerateDataKey';
    expect(await wireError(h.service.url, headers, body)).toBe('InvalidSignatureException');
    for (const missing of all) {
      const without = sign(
        h.service.url,
        body,
        'GenerateDataKey',
        all.filter((n) => n !== missing),
      );
      expect(await wireError(h.service.url, without, body)).toBe('InvalidSignatureException');
    }
  });

  it('failed authentications are audited with the access key tried; CreateKey names the key created', async () => {
    const wrong = h.client({ accessKeyId: READER.accessKeyId, secretAccessKey: 'not-the-reader-secret-000' });
    await expect(wrong.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
    const unknown = h.client({ accessKeyId: 'AKIANOBODY000001', secretAccessKey: 'whatever-secret-0000000' });
    await expect(unknown.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    const created = (await h.client().send(new CreateKeyCommand({}))).KeyMetadata!;
    const lines = await auditLines(join(h.dataDir, 'audit.log'));
    const bad = lines.find((l) => l.errorType === 'InvalidSignatureException' && l.accessKeyId === READER.accessKeyId);
    expect(bad).toBeDefined();
    expect(bad!.principal).toBeUndefined();
    expect(lines.some((l) => l.errorType === 'UnrecognizedClientException' && l.accessKeyId === 'AKIANOBODY000001')).toBe(true);
    const create = lines.find((l) => l.operation === 'CreateKey' && (l.keyArns as string[] | undefined)?.[0] === created.Arn);
    expect(create).toMatchObject({ outcome: 'success', principal: 'admin' });
    expect(await readFile(join(h.dataDir, 'audit.log'), 'utf8')).not.toContain('not-the-reader-secret-000');
  });
});

describe('ciphertext format 2: a key per message', () => {
  const backing = randomBytes(32);
  const keyId = '1234abcd-12ab-34cd-56ef-1234567890ab';
  const ctx = { purpose: 'test' };

  it('seals under HKDF(backing key, 256-bit nonce) exactly as documented', () => {
    const blob = sealCiphertext(backing, { keyId, backingVersion: 7 }, Buffer.from('secret dek'), ctx);
    expect(blob[0]).toBe(2);
    expect(parseCiphertextHeader(blob)).toEqual({ keyId, backingVersion: 7 });
    const head = blob.subarray(0, 22);
    const nonce = blob.subarray(22, 54);
    const info = Buffer.concat([Buffer.from('vectorseal/kms/message-key/v2\0'), head]);
    const k = Buffer.from(hkdfSync('sha256', backing, nonce, info, 32));
    const d = createDecipheriv('aes-256-gcm', k, Buffer.alloc(12));
    d.setAAD(Buffer.concat([head, encodeEncryptionContext(ctx)]));
    d.setAuthTag(blob.subarray(blob.length - 16));
    expect(Buffer.concat([d.update(blob.subarray(54, blob.length - 16)), d.final()]).toString()).toBe('secret dek');
    // Two seals of the same plaintext share no nonce.
    const again = sealCiphertext(backing, { keyId, backingVersion: 7 }, Buffer.from('secret dek'), ctx);
    expect(again.subarray(22, 54).equals(nonce)).toBe(false);
    expect(openCiphertext(backing, again, ctx).toString()).toBe('secret dek');
    // The nonce, header and context are all authenticated.
    for (const at of [1, 10, 19, 30, blob.length - 1]) {
      const bad = Buffer.from(blob);
      bad[at]! ^= 1;
      expect(() => openCiphertext(backing, bad, ctx)).toThrow(/not valid/);
    }
    expect(() => openCiphertext(backing, blob, { purpose: 'other' })).toThrow(/not valid/);
  });

  it('still opens version 1 blobs (random IV under the backing key)', () => {
    const head = Buffer.alloc(21);
    head[0] = 1;
    Buffer.from(keyId.replace(/-/g, ''), 'hex').copy(head, 1);
    head.writeUInt32BE(3, 17);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', backing, iv);
    c.setAAD(Buffer.concat([head, encodeEncryptionContext(ctx)]));
    const body = Buffer.concat([c.update('old dek'), c.final()]);
    const v1 = Buffer.concat([head, iv, body, c.getAuthTag()]);
    expect(parseCiphertextHeader(v1)).toEqual({ keyId, backingVersion: 3 });
    expect(openCiphertext(backing, v1, ctx).toString()).toBe('old dek');
    v1[25]! ^= 1;
    expect(() => openCiphertext(backing, v1, ctx)).toThrow(/not valid/);
  });

  it('multi-region key ids round-trip through the header', () => {
    const mrk = `mrk-${'ab'.repeat(16)}`;
    const blob = sealCiphertext(backing, { keyId: mrk, backingVersion: 1 }, Buffer.from('x'), {});
    expect(parseCiphertextHeader(blob)).toEqual({ keyId: mrk, backingVersion: 1 });
  });
});

describe('access keys reload without a restart', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vs-kms-reload-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('reload() picks up an added principal, a removed one and a changed secret (signing-key cache included)', async () => {
    const file = join(dir, 'config.json');
    const base = testConfig();
    await writeFile(file, JSON.stringify(base));
    const service = await startKeyService({ port: 0, dataDir: join(dir, 'data'), configFile: file });
    const client = (creds: { accessKeyId: string; secretAccessKey: string }) =>
      new KMSClient({ endpoint: service.url, region: REGION, credentials: creds, maxAttempts: 1 });
    const newcomer = { accessKeyId: 'AKIANEWCOMER0001', secretAccessKey: 'newcomer-secret-0123456789' };
    const rotated = { accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'admin-rotated-secret-0123456' };
    const clients = [client(newcomer), client(ADMIN), client(rotated), client(READER)];
    try {
      await clients[1]!.send(new ListKeysCommand({}));
      await expect(clients[0]!.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
      const next: KeyServiceConfig = {
        ...base,
        principals: [
          { name: 'admin', ...rotated, policy: [{ operations: ['*'] }] },
          { name: 'newcomer', ...newcomer, policy: [{ operations: ['ListKeys'] }] },
        ],
      };
      await writeFile(file, JSON.stringify(next));
      await service.reload();
      await clients[0]!.send(new ListKeysCommand({}));
      await clients[2]!.send(new ListKeysCommand({}));
      await expect(clients[1]!.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
      await expect(clients[3]!.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
      await expect(clients[0]!.send(new CreateKeyCommand({}))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      // A configuration that does not validate is refused and the old one stays.
      await writeFile(file, '{"region":"us-east-1"');
      await expect(service.reload()).rejects.toMatchObject({ code: 'VS_INVALID_ARGUMENT' });
      await clients[0]!.send(new ListKeysCommand({}));
    } finally {
      for (const c of clients) c.destroy();
      await service.close();
    }
  });

  it('kms serve reloads on SIGHUP', async () => {
    const file = join(dir, 'cli-config.json');
    await writeFile(file, JSON.stringify(testConfig()), { mode: 0o600 });
    const child = spawnCli(['kms', 'serve', '--port', '0', '--data-dir', join(dir, 'cli-data'), '--config', file, '--create-root'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
      return re.exec(stderr);
    };
    try {
      const url = (await waitFor(/listening on (http:\/\/\S+)/))?.[1];
      expect(url).toBeDefined();
      const newcomer = { accessKeyId: 'AKIASIGHUP000001', secretAccessKey: 'sighup-secret-0123456789' };
      const kms = new KMSClient({ endpoint: url!, region: REGION, credentials: newcomer, maxAttempts: 1 });
      await expect(kms.send(new ListKeysCommand({}))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
      const cfg = testConfig();
      cfg.principals.push({ name: 'sighup', ...newcomer, policy: [{ operations: ['ListKeys'] }] });
      await writeFile(file, JSON.stringify(cfg));
      child.kill('SIGHUP');
      expect(await waitFor(/reloaded its configuration/)).not.toBeNull();
      expect((await kms.send(new ListKeysCommand({}))).Keys).toEqual([]);
      kms.destroy();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});

describe('mutual TLS', () => {
  let dir: string;
  const pem: Record<string, Buffer> = {};
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vs-kms-mtls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ca = (name: string) => {
      ssl(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
      );
    };
    const leaf = (name: string, issuer: string, ext: string) => {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      writeFileSync(join(dir, `${name}.ext`), ext);
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${issuer}.crt`,
        '-CAkey',
        `${issuer}.key`,
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
      );
    };
    ca('ca');
    ca('rogue-ca');
    leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
    leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
    for (const n of ['ca', 'server', 'client', 'rogue']) {
      pem[`${n}.crt`] = await readFile(join(dir, `${n}.crt`));
      pem[`${n}.key`] = await readFile(join(dir, `${n}.key`));
    }
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('the SDK with a client certificate from the CA is served; without one, or with another CA, the handshake fails', async () => {
    const service = await startKeyService({
      port: 0,
      dataDir: join(dir, 'data'),
      config: testConfig(),
      tls: { cert: pem['server.crt']!, key: pem['server.key']!, clientCa: pem['ca.crt']! },
    });
    const agents: Agent[] = [];
    const client = (cert?: string) => {
      const agent = new Agent({ ca: pem['ca.crt'], ...(cert ? { cert: pem[`${cert}.crt`], key: pem[`${cert}.key`] } : {}) });
      agents.push(agent);
      return new KMSClient({
        endpoint: service.url,
        region: REGION,
        credentials: ADMIN,
        maxAttempts: 1,
        requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
      });
    };
    const good = client('client');
    const none = client();
    const rogue = client('rogue');
    try {
      expect(service.url.startsWith('https://')).toBe(true);
      const key = (await good.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const enc = await good.send(new EncryptCommand({ KeyId: key, Plaintext: Buffer.from('hello') }));
      expect(Buffer.from((await good.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext!).toString()).toBe(
        'hello',
      );
      for (const bad of [none, rogue]) {
        const err = await bad.send(new ListKeysCommand({})).then(
          () => undefined,
          (e: unknown) => e as Error & { code?: string },
        );
        expect(err).toBeDefined();
        // A TLS alert or a reset: never an HTTP response.
        expect((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBeUndefined();
      }
    } finally {
      for (const c of [good, none, rogue]) c.destroy();
      for (const a of agents) a.destroy();
      await service.close();
    }
  });
});
