import { createHash, createHmac, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeysCommand,
} from '@aws-sdk/client-kms';
import { startKeyService, type KeyServiceConfig, type RunningKeyService } from '../../../src/kms/index.js';

/**
 * Hostile input on the key service: requests signed correctly with SigV4, so
 * that they get past authentication to the parsers and handlers, carrying
 * malformed JSON, missing, oversized and wrongly typed members, bad base64,
 * huge bodies, wrong or missing X-Amz-Target and Content-Type headers, and
 * unknown targets. Every one must be answered with a 4xx and a
 * `{"__type","message"}` body; afterwards the service still answers, and every
 * key still decrypts what it encrypted before, also after a restart.
 */

const REGION = 'us-east-1';
const ADMIN = { accessKeyId: 'AKIAHOSTILE00001', secretAccessKey: 'hostile-admin-secret-0123456789' };
const MAX_BODY = 1024 * 1024;
const REQUEST_TIMEOUT_MS = 20_000;

export interface HostileKmsReport {
  tried: number;
  /** Answered with a 4xx and a well-formed {"__type","message"} body. */
  rejected: number;
  /** Answered 200: every case is invalid by construction, so this must be 0. */
  accepted: number;
  /** A 5xx, a malformed answer, no answer (hang, reset). */
  untyped: number;
  /** Checks of stored keys and ciphertexts that failed (during, at the end, after a restart). */
  damaged: number;
  handPicked: number;
  generated: number;
  /** Valid requests sent between hostile ones to prove the service is up. */
  livenessChecks: number;
  byType: Record<string, number>;
  failures: string[];
}

interface HostileCase {
  name: string;
  /** The X-Amz-Target operation; undefined sends no X-Amz-Target header. */
  target?: string | undefined;
  /** An X-Amz-Target sent as is, without the TrentService. prefix. */
  rawTarget?: string;
  /** The Content-Type; undefined sends none. */
  contentType?: string | undefined;
  body: Buffer;
  method?: string;
  path?: string;
  /** Send without Content-Length (chunked), in pieces. */
  chunked?: boolean;
}

const JSON_TYPE = 'application/x-amz-json-1.1';

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Signs and sends one request with SigV4 over exactly the headers given. */
function send(url: string, c: HostileCase): Promise<Response> {
  const u = new URL(url);
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { host: u.host, 'x-amz-date': amzDate };
  if (c.contentType !== undefined) headers['content-type'] = c.contentType;
  if (c.rawTarget !== undefined) headers['x-amz-target'] = c.rawTarget;
  else if (c.target !== undefined) headers['x-amz-target'] = `TrentService.${c.target}`;
  const method = c.method ?? 'POST';
  const path = c.path ?? '/';
  const signed = Object.keys(headers).sort();
  const [pathname, query = ''] = path.split('?') as [string, string?];
  const canonical = [method, pathname, query, signed.map((k) => `${k}:${headers[k]}\n`).join(''), signed.join(';'), sha256(c.body)].join(
    '\n',
  );
  const scope = `${day}/${REGION}/kms/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(Buffer.from(canonical))].join('\n');
  let key = hmac(`AWS4${ADMIN.secretAccessKey}`, day);
  for (const part of [REGION, 'kms', 'aws4_request']) key = hmac(key, part);
  const authorization =
    `AWS4-HMAC-SHA256 Credential=${ADMIN.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, ` +
    `Signature=${hmac(key, toSign).toString('hex')}`;
  const wire: Record<string, string | number> = { ...headers, authorization };
  if (!c.chunked) wire['content-length'] = c.body.length;
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers: wire, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    // The service may answer an oversized body before it is all sent; what the client sees then is the answer.
    req.on('error', reject);
    if (c.chunked) {
      for (let at = 0; at < c.body.length; at += 64 * 1024) req.write(c.body.subarray(at, at + 64 * 1024));
      req.end();
    } else req.end(c.body);
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const hmac = (k: string | Buffer, s: string): Buffer => createHmac('sha256', k).update(s).digest();
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** Judges one answer: undefined when it is a proper 4xx error, else what is wrong. */
function judge(r: Response): { type?: string; problem?: string } {
  if (r.status === 200) return { problem: 'accepted (200)' };
  if (r.status < 400 || r.status > 499) return { problem: `status ${r.status}` };
  if (r.headers['content-type'] !== JSON_TYPE) return { problem: `content-type ${String(r.headers['content-type'])}` };
  if (typeof r.headers['x-amzn-requestid'] !== 'string') return { problem: 'no x-amzn-RequestId' };
  let body: unknown;
  try {
    body = JSON.parse(r.body.toString('utf8'));
  } catch {
    return { problem: 'body is not JSON' };
  }
  const b = body as { __type?: unknown; message?: unknown };
  if (typeof b !== 'object' || b === null || typeof b.__type !== 'string' || typeof b.message !== 'string' || b.__type.length === 0) {
    return { problem: 'body lacks __type and message' };
  }
  return { type: b.__type };
}

interface Fixture {
  keyId: string;
  keyArn: string;
  otherKeyId: string;
  /** Ciphertexts made before any hostile input, with their plaintexts and contexts. */
  sealed: { keyId: string; blob: Uint8Array; plaintext: Buffer; context: Record<string, string> }[];
  keyStates: Map<string, string>;
  aliases: string[];
}

// ---- hand-picked cases --------------------------------------------------------

function handPicked(f: Fixture): HostileCase[] {
  const c = (name: string, target: string | undefined, body: Buffer | string, extra: Partial<HostileCase> = {}): HostileCase => ({
    name,
    target,
    contentType: JSON_TYPE,
    body: typeof body === 'string' ? Buffer.from(body) : body,
    ...extra,
  });
  const blob = Buffer.from(f.sealed[0]!.blob).toString('base64');
  const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  const out: HostileCase[] = [
    // Malformed JSON and bodies that are JSON but not an object.
    c('truncated JSON', 'DescribeKey', '{"KeyId":'),
    c('trailing comma', 'DescribeKey', `{"KeyId":"${f.keyId}",}`),
    c('single quotes', 'DescribeKey', `{'KeyId':'${f.keyId}'}`),
    c('JSON null', 'DescribeKey', 'null'),
    c('JSON array', 'Encrypt', '[]'),
    c('JSON string', 'Encrypt', '"KeyId"'),
    c('JSON number', 'Decrypt', '42'),
    c('JSON true', 'Decrypt', 'true'),
    c('invalid UTF-8', 'DescribeKey', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
    c('NUL bytes', 'DescribeKey', Buffer.alloc(64)),
    c('deeply nested arrays', 'DescribeKey', `{"KeyId":${deep(200_000)}}`),
    c('deeply nested objects', 'Encrypt', `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`),
    c('duplicate members, last one wrong', 'DescribeKey', `{"KeyId":"${f.keyId}","KeyId":17}`),
    c('__proto__ member', 'Encrypt', `{"__proto__":{"KeyId":"${f.keyId}","Plaintext":"YQ=="}}`),
    c('constructor member', 'DescribeKey', '{"constructor":{"prototype":{"KeyId":"x"}}}'),
    // Missing members.
    c('Encrypt without Plaintext', 'Encrypt', json({ KeyId: f.keyId })),
    c('Encrypt without KeyId', 'Encrypt', json({ Plaintext: 'YWJj' })),
    c('Decrypt without CiphertextBlob', 'Decrypt', json({ KeyId: f.keyId })),
    c('ReEncrypt without DestinationKeyId', 'ReEncrypt', json({ CiphertextBlob: blob })),
    c('CreateAlias without TargetKeyId', 'CreateAlias', json({ AliasName: 'alias/hostile' })),
    c('ScheduleKeyDeletion with empty body', 'ScheduleKeyDeletion', ''),
    c('RotateKeyOnDemand with {}', 'RotateKeyOnDemand', '{}'),
    c('DisableKey with {}', 'DisableKey', '{}'),
    // Wrong types and oversized members.
    c('KeyId a number', 'DescribeKey', json({ KeyId: 12345 })),
    c('KeyId an object', 'Encrypt', json({ KeyId: { $ne: null }, Plaintext: 'YWJj' })),
    c('KeyId 100 KiB', 'DescribeKey', json({ KeyId: 'k'.repeat(100 * 1024) })),
    c('Plaintext a number', 'Encrypt', json({ KeyId: f.keyId, Plaintext: 7 })),
    c('Plaintext 4097 bytes', 'Encrypt', json({ KeyId: f.keyId, Plaintext: Buffer.alloc(4097, 1).toString('base64') })),
    c('Plaintext empty', 'Encrypt', json({ KeyId: f.keyId, Plaintext: '' })),
    c('CiphertextBlob 6145 bytes', 'Decrypt', json({ CiphertextBlob: Buffer.alloc(6145, 2).toString('base64') })),
    c('NumberOfBytes 0', 'GenerateDataKey', json({ KeyId: f.keyId, NumberOfBytes: 0 })),
    c('NumberOfBytes 1025', 'GenerateDataKey', json({ KeyId: f.keyId, NumberOfBytes: 1025 })),
    c('NumberOfBytes 1.5', 'GenerateDataKey', json({ KeyId: f.keyId, NumberOfBytes: 1.5 })),
    c('NumberOfBytes a string', 'GenerateDataKey', json({ KeyId: f.keyId, NumberOfBytes: '32' })),
    c('KeySpec unknown', 'GenerateDataKey', json({ KeyId: f.keyId, KeySpec: 'AES_512' })),
    c('PendingWindowInDays 6', 'ScheduleKeyDeletion', json({ KeyId: f.keyId, PendingWindowInDays: 6 })),
    c('PendingWindowInDays 31', 'ScheduleKeyDeletion', json({ KeyId: f.keyId, PendingWindowInDays: 31 })),
    c('PendingWindowInDays a string', 'ScheduleKeyDeletion', json({ KeyId: f.keyId, PendingWindowInDays: '7' })),
    c('RotationPeriodInDays 89', 'EnableKeyRotation', json({ KeyId: f.keyId, RotationPeriodInDays: 89 })),
    c('Limit 0', 'ListKeys', json({ Limit: 0 })),
    c('Limit 1001', 'ListKeys', json({ Limit: 1001 })),
    c('Marker an array', 'ListAliases', json({ Marker: ['a'] })),
    c('Description 8193 chars', 'CreateKey', json({ Description: 'd'.repeat(8193) })),
    c('KeyUsage unknown', 'CreateKey', json({ KeyUsage: 'ENCRYPT_EVERYTHING' })),
    c('Origin a number', 'CreateKey', json({ Origin: 3 })),
    c('EncryptionContext a string', 'Encrypt', json({ KeyId: f.keyId, Plaintext: 'YWJj', EncryptionContext: 'tenant=a' })),
    c('EncryptionContext an array', 'Encrypt', json({ KeyId: f.keyId, Plaintext: 'YWJj', EncryptionContext: ['a'] })),
    c('EncryptionContext value a number', 'GenerateDataKey', json({ KeyId: f.keyId, NumberOfBytes: 32, EncryptionContext: { a: 1 } })),
    c('EncryptionContext empty key', 'Encrypt', json({ KeyId: f.keyId, Plaintext: 'YWJj', EncryptionContext: { '': 'x' } })),
    c('AliasName not alias/', 'CreateAlias', json({ AliasName: 'hostile', TargetKeyId: f.keyId })),
    c('AliasName reserved alias/aws/', 'CreateAlias', json({ AliasName: 'alias/aws/hostile', TargetKeyId: f.keyId })),
    c('AliasName existing', 'CreateAlias', json({ AliasName: f.aliases[0], TargetKeyId: f.otherKeyId })),
    // Bad base64 and wrong references.
    c('Plaintext not base64', 'Encrypt', json({ KeyId: f.keyId, Plaintext: 'not base64!' })),
    c('Plaintext base64url', 'Encrypt', json({ KeyId: f.keyId, Plaintext: '-_-_' })),
    c('CiphertextBlob not base64', 'Decrypt', json({ CiphertextBlob: '%%%' })),
    c('CiphertextBlob random bytes', 'Decrypt', json({ CiphertextBlob: Buffer.alloc(200, 7).toString('base64') })),
    c('CiphertextBlob cut short', 'Decrypt', json({ CiphertextBlob: Buffer.from(f.sealed[0]!.blob).subarray(0, 40).toString('base64') })),
    c('CiphertextBlob with a wrong context', 'Decrypt', json({ CiphertextBlob: blob, EncryptionContext: { other: 'context' } })),
    c(
      'CiphertextBlob under the other KeyId',
      'Decrypt',
      json({ CiphertextBlob: blob, KeyId: f.otherKeyId, EncryptionContext: f.sealed[0]!.context }),
    ),
    c('KeyId an unknown UUID', 'DescribeKey', json({ KeyId: randomUUID() })),
    c('KeyId a foreign ARN', 'DescribeKey', json({ KeyId: `arn:aws:kms:eu-west-1:999999999999:key/${f.keyId}` })),
    c('KeyId an unknown alias', 'Encrypt', json({ KeyId: 'alias/none', Plaintext: 'YWJj' })),
    c('ImportToken garbage', 'ImportKeyMaterial', json({ KeyId: f.keyId, ImportToken: 'YWJj', EncryptedKeyMaterial: 'YWJj' })),
    // Headers and targets.
    c('no X-Amz-Target', undefined, '{}'),
    c('unknown target', 'DeleteEverything', '{}'),
    c('empty target', '', '{}'),
    c('target with the wrong service prefix', undefined, '{}', { rawTarget: 'OtherService.ListKeys' }),
    c('target without a service prefix', undefined, '{}', { rawTarget: 'ListKeys' }),
    c('no Content-Type', 'ListKeys', '{}', { contentType: undefined }),
    c('Content-Type text/plain', 'ListKeys', '{}', { contentType: 'text/plain' }),
    c('Content-Type application/json', 'ListKeys', '{}', { contentType: 'application/json' }),
    c('Content-Type form', 'ListKeys', 'Limit=1', { contentType: 'application/x-www-form-urlencoded' }),
    c('GET', 'ListKeys', '', { method: 'GET' }),
    c('PUT', 'ListKeys', '{}', { method: 'PUT' }),
    c('POST to another path', 'ListKeys', '{}', { path: '/admin' }),
    c('POST with a query', 'ListKeys', '{}', { path: '/?Action=ListKeys' }),
    // Huge bodies: one past the limit, with and without Content-Length, and far past it.
    c('body one byte past the limit', 'Encrypt', Buffer.alloc(MAX_BODY + 1, 0x20)),
    c('body 3 MiB chunked', 'Encrypt', Buffer.alloc(3 * MAX_BODY, 0x20), { chunked: true }),
    c('body 900 KiB of members', 'DescribeKey', json(Object.fromEntries(Array.from({ length: 40_000 }, (_, i) => [`m${i}`, i])))),
    c('Plaintext 900 KiB', 'Encrypt', json({ KeyId: f.keyId, Plaintext: Buffer.alloc(600 * 1024, 3).toString('base64') })),
  ];
  return out;
}

// ---- generated cases ------------------------------------------------------------

type FieldKind = 'key' | 'blob' | 'cipher' | 'ctx' | 'int' | 'enum' | 'string';
interface Field {
  name: string;
  kind: FieldKind;
  required: boolean;
  max?: number;
  range?: [number, number];
  values?: string[];
}
interface OpSpec {
  op: string;
  fields: Field[];
}

const OPS: OpSpec[] = [
  {
    op: 'Encrypt',
    fields: [
      { name: 'KeyId', kind: 'key', required: true },
      { name: 'Plaintext', kind: 'blob', required: true, max: 4096 },
      { name: 'EncryptionContext', kind: 'ctx', required: false },
    ],
  },
  {
    op: 'Decrypt',
    fields: [
      { name: 'CiphertextBlob', kind: 'cipher', required: true, max: 6144 },
      { name: 'EncryptionContext', kind: 'ctx', required: false },
    ],
  },
  {
    op: 'GenerateDataKey',
    fields: [
      { name: 'KeyId', kind: 'key', required: true },
      { name: 'NumberOfBytes', kind: 'int', required: false, range: [1, 1024] },
      { name: 'EncryptionContext', kind: 'ctx', required: false },
    ],
  },
  {
    op: 'GenerateDataKey',
    fields: [
      { name: 'KeyId', kind: 'key', required: true },
      { name: 'KeySpec', kind: 'enum', required: false, values: ['AES_256', 'AES_128'] },
    ],
  },
  {
    op: 'ReEncrypt',
    fields: [
      { name: 'CiphertextBlob', kind: 'cipher', required: true, max: 6144 },
      { name: 'DestinationKeyId', kind: 'key', required: true },
      { name: 'DestinationEncryptionContext', kind: 'ctx', required: false },
    ],
  },
  { op: 'DescribeKey', fields: [{ name: 'KeyId', kind: 'key', required: true }] },
  {
    op: 'CreateAlias',
    fields: [
      { name: 'AliasName', kind: 'string', required: true, max: 256 },
      { name: 'TargetKeyId', kind: 'key', required: true },
    ],
  },
  {
    op: 'ScheduleKeyDeletion',
    fields: [
      { name: 'KeyId', kind: 'key', required: true },
      { name: 'PendingWindowInDays', kind: 'int', required: false, range: [7, 30] },
    ],
  },
  {
    op: 'EnableKeyRotation',
    fields: [
      { name: 'KeyId', kind: 'key', required: true },
      { name: 'RotationPeriodInDays', kind: 'int', required: false, range: [90, 2560] },
    ],
  },
  { op: 'DisableKey', fields: [{ name: 'KeyId', kind: 'key', required: true }] },
  {
    op: 'CreateKey',
    fields: [
      { name: 'KeyUsage', kind: 'enum', required: false, values: ['ENCRYPT_DECRYPT'] },
      { name: 'Origin', kind: 'enum', required: false, values: ['AWS_KMS'] },
    ],
  },
  { op: 'ListKeys', fields: [{ name: 'Limit', kind: 'int', required: false, range: [1, 1000] }] },
];

const scalarOrList = [fc.integer(), fc.double(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 })] as const;
const wrongType = fc.oneof(...scalarOrList, fc.dictionary(fc.string({ maxLength: 4 }), fc.string(), { maxKeys: 3 }));
/** For an encryption context a map of strings is the right type, so only scalars and lists are wrong. */
const wrongTypeForMap = fc.oneof(...scalarOrList);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A value for a field that its validation must refuse. */
function badValue(field: Field): fc.Arbitrary<unknown> {
  const choices: fc.Arbitrary<unknown>[] = [field.kind === 'ctx' ? wrongTypeForMap : wrongType];
  switch (field.kind) {
    case 'key':
      // Never a real key: unknown UUIDs, aliases and ARNs, junk, empty and oversized strings.
      choices.push(
        fc.uuid().map((u) => u),
        fc.string({ minLength: 1, maxLength: 60 }).map((s) => `alias/zz-${s}`),
        fc.string({ maxLength: 80 }).map((s) => `x${s}`),
        fc.constant(''),
        fc.integer({ min: 2049, max: 20_000 }).map((n) => 'k'.repeat(n)),
      );
      break;
    case 'blob':
    case 'cipher': {
      const max = field.max ?? 4096;
      choices.push(
        fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !BASE64.test(s)),
        fc.constant(''),
        fc.integer({ min: max + 1, max: max + 4096 }).map((n) => Buffer.alloc(n, 0x61).toString('base64')),
      );
      // Well-formed base64 of random bytes is never a valid ciphertext.
      if (field.kind === 'cipher')
        choices.push(fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b).toString('base64')));
      break;
    }
    case 'ctx':
      choices.push(
        // A key such as "__proto__" can vanish when the dictionary is serialised, leaving a valid empty
        // context: keep only dictionaries whose JSON still carries a non-string member.
        fc
          .dictionary(
            fc.string({ minLength: 1, maxLength: 8 }),
            fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string())),
            { minKeys: 1, maxKeys: 3 },
          )
          .filter((d) => Object.keys(JSON.parse(JSON.stringify(d)) as object).length > 0),
        fc.string({ maxLength: 10 }).map((v) => ({ '': v })),
      );
      break;
    case 'int': {
      const [lo, hi] = field.range ?? [1, 1];
      choices.push(
        fc.integer({ min: -1_000_000, max: lo - 1 }),
        fc.integer({ min: hi + 1, max: 10_000_000 }),
        fc.double({ min: lo, max: hi, noInteger: true }),
        fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0.5),
        fc.integer({ min: lo, max: hi }).map(String),
      );
      break;
    }
    case 'enum':
      choices.push(fc.string({ maxLength: 30 }).filter((s) => !(field.values ?? []).includes(s)));
      break;
    case 'string':
      choices.push(
        fc.constant(''),
        fc.integer({ min: (field.max ?? 256) + 1, max: (field.max ?? 256) + 2000 }).map((n) => `alias/${'a'.repeat(n)}`),
        fc.string({ minLength: 1, maxLength: 40 }).map((s) => `no-prefix-${s}`),
      );
      break;
    default:
  }
  return fc.oneof(...choices);
}

/** A valid value for a field (so that exactly the injected defect makes the request wrong). */
function goodValue(field: Field, f: Fixture): unknown {
  switch (field.kind) {
    case 'key':
      return f.keyId;
    case 'blob':
      return 'YWJj';
    case 'cipher':
      return Buffer.from(f.sealed[0]!.blob).toString('base64');
    case 'ctx':
      return f.sealed[0]!.context;
    case 'int':
      return field.range?.[0];
    case 'enum':
      return field.values?.[0];
    case 'string':
      return `alias/hostile-${randomUUID()}`;
    default:
      return undefined;
  }
}

function generatedCases(f: Fixture, runs: number, seed: number): HostileCase[] {
  const member = fc.constantFrom(...OPS).chain((spec) =>
    fc.nat({ max: spec.fields.length - 1 }).chain((i) => {
      const field = spec.fields[i]!;
      const defect = field.required ? fc.oneof(badValue(field), fc.constant(MISSING)) : badValue(field);
      return defect.map((bad) => ({ spec, field, bad }));
    }),
  );
  const memberCases = fc.sample(member, { numRuns: runs, seed }).map(({ spec, field, bad }): HostileCase => {
    const body: Record<string, unknown> = {};
    for (const other of spec.fields) {
      if (other === field) {
        if (bad !== MISSING) body[other.name] = bad;
      } else if (other.required) body[other.name] = goodValue(other, f);
    }
    if (spec.op === 'Decrypt' && field.kind !== 'ctx') body['EncryptionContext'] = f.sealed[0]!.context;
    return {
      name: `${spec.op}: ${field.name} ${bad === MISSING ? 'missing' : describe(bad)}`,
      target: spec.op,
      contentType: JSON_TYPE,
      body: json(body),
    };
  });
  // Bodies that are not a JSON object, sent to operations with required members.
  const notObject = fc
    .oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
    )
    .filter((s) => !isJsonObject(s));
  const junk = fc.sample(fc.tuple(notObject, fc.constantFrom('DescribeKey', 'Encrypt', 'Decrypt', 'ReEncrypt', 'ScheduleKeyDeletion')), {
    numRuns: Math.ceil(runs / 3),
    seed: seed + 1,
  });
  const junkCases = junk.map(
    ([text, op]): HostileCase => ({
      name: `${op}: body not a JSON object`,
      target: op,
      contentType: JSON_TYPE,
      body: Buffer.from(text, 'latin1'),
    }),
  );
  // Targets and content types that are not the service's.
  const supported = new Set([
    'CreateKey',
    'DescribeKey',
    'ListKeys',
    'CreateAlias',
    'ListAliases',
    'GenerateDataKey',
    'GenerateDataKeyWithoutPlaintext',
    'Encrypt',
    'Decrypt',
    'ReEncrypt',
    'EnableKey',
    'DisableKey',
    'EnableKeyRotation',
    'DisableKeyRotation',
    'GetKeyRotationStatus',
    'RotateKeyOnDemand',
    'ListKeyRotations',
    'ScheduleKeyDeletion',
    'CancelKeyDeletion',
    'GetParametersForImport',
    'ImportKeyMaterial',
  ]);
  // Header values must be legal header characters (tab and printable ASCII) to reach the service at all.
  const headerText = fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x').trim());
  const targets = fc.sample(
    headerText.filter((s) => !supported.has(s)),
    { numRuns: Math.ceil(runs / 6), seed: seed + 2 },
  );
  const targetCases = targets.map(
    (t): HostileCase => ({ name: 'unknown target', target: t, contentType: JSON_TYPE, body: Buffer.from('{}') }),
  );
  const types = fc.sample(
    headerText.filter((s) => s.length > 0 && !/^application\/x-amz-json-1\.[01]\b/i.test(s)),
    { numRuns: Math.ceil(runs / 6), seed: seed + 3 },
  );
  const typeCases = types.map(
    (t): HostileCase => ({ name: 'wrong Content-Type', target: 'ListKeys', contentType: t, body: Buffer.from('{}') }),
  );
  return [...memberCases, ...junkCases, ...targetCases, ...typeCases];
}

const MISSING = Symbol('missing');

function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} chars` : `"${v}"`;
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${typeof v} (${text.length} chars)` : text;
}

function isJsonObject(s: string): boolean {
  if (s.length === 0) return true; // an empty body reads as {}
  try {
    const v = JSON.parse(s) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

// ---- the run ------------------------------------------------------------------

function config(): KeyServiceConfig {
  return {
    region: REGION,
    accountId: '111122223333',
    principals: [{ name: 'admin', ...ADMIN, policy: [{ operations: ['*'], keys: ['*'] }] }],
  };
}

async function makeFixture(kms: KMSClient): Promise<Fixture> {
  const keyMeta = (await kms.send(new CreateKeyCommand({ Description: 'hostile-input target' }))).KeyMetadata!;
  const other = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/hostile-main', TargetKeyId: keyMeta.KeyId! }));
  const sealed: Fixture['sealed'] = [];
  for (let i = 0; i < 6; i++) {
    const keyId = i % 2 === 0 ? keyMeta.KeyId! : other.KeyId!;
    const context = { 'vectorseal:collection': `c${i}` };
    if (i < 4) {
      const plaintext = Buffer.from(`sealed before the hostile run #${i}`);
      const r = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }));
      sealed.push({ keyId, blob: r.CiphertextBlob!, plaintext, context });
    } else {
      const r = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
      sealed.push({ keyId, blob: r.CiphertextBlob!, plaintext: Buffer.from(r.Plaintext!), context });
    }
  }
  return {
    keyId: keyMeta.KeyId!,
    keyArn: keyMeta.Arn!,
    otherKeyId: other.KeyId!,
    sealed,
    keyStates: await keyStates(kms),
    aliases: ['alias/hostile-main'],
  };
}

async function keyStates(kms: KMSClient): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of (await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys ?? []) {
    const d = await kms.send(new DescribeKeyCommand({ KeyId: k.KeyId! }));
    out.set(k.KeyId!, d.KeyMetadata!.KeyState!);
  }
  return out;
}

/** Every check of stored state that fails: old ciphertexts decrypt to their plaintexts, keys and aliases are as before. */
async function damage(kms: KMSClient, f: Fixture): Promise<string[]> {
  const problems: string[] = [];
  for (const [i, s] of f.sealed.entries()) {
    try {
      const r = await kms.send(new DecryptCommand({ CiphertextBlob: s.blob, EncryptionContext: s.context }));
      if (
        r.KeyId !== (await kms.send(new DescribeKeyCommand({ KeyId: s.keyId }))).KeyMetadata!.Arn ||
        !Buffer.from(r.Plaintext!).equals(s.plaintext)
      ) {
        problems.push(`ciphertext #${i} decrypts to something else`);
      }
    } catch (err) {
      problems.push(`ciphertext #${i} no longer decrypts: ${(err as Error).name}`);
    }
  }
  const states = await keyStates(kms);
  for (const [id, state] of f.keyStates)
    if (states.get(id) !== state) problems.push(`key ${id} is ${states.get(id) ?? 'gone'}, was ${state}`);
  for (const id of states.keys()) if (!f.keyStates.has(id)) problems.push(`a key appeared: ${id}`);
  const aliases = ((await kms.send(new ListAliasesCommand({}))).Aliases ?? []).map((a) => a.AliasName).sort();
  if (JSON.stringify(aliases) !== JSON.stringify(f.aliases)) problems.push(`aliases changed: ${aliases.join(', ')}`);
  return problems;
}

/** Runs the hand-picked and generated hostile requests against a fresh key service. */
export async function runHostileKms(options: { runs: number; seed: number; livenessEvery?: number }): Promise<HostileKmsReport> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vs-rel-kms-'));
  const start = (): Promise<RunningKeyService> =>
    startKeyService({ port: 0, host: '127.0.0.1', dataDir, config: config(), maxBodyBytes: MAX_BODY });
  let service = await start();
  const clients: KMSClient[] = [];
  const client = (): KMSClient => {
    const c = new KMSClient({ endpoint: service.url, region: REGION, credentials: ADMIN, maxAttempts: 1 });
    clients.push(c);
    return c;
  };
  const report: HostileKmsReport = {
    tried: 0,
    rejected: 0,
    accepted: 0,
    untyped: 0,
    damaged: 0,
    handPicked: 0,
    generated: 0,
    livenessChecks: 0,
    byType: {},
    failures: [],
  };
  try {
    let kms = client();
    const f = await makeFixture(kms);
    const hand = handPicked(f);
    const generated = generatedCases(f, options.runs, options.seed);
    report.handPicked = hand.length;
    report.generated = generated.length;
    const every = options.livenessEvery ?? 20;
    for (const [i, c] of [...hand, ...generated].entries()) {
      report.tried++;
      let r: Response;
      try {
        r = await send(service.url, c);
      } catch (err) {
        report.untyped++;
        report.failures.push(`${c.name}: no answer (${(err as Error).message})`);
        continue;
      }
      const j = judge(r);
      if (j.problem === undefined) {
        report.rejected++;
        report.byType[j.type!] = (report.byType[j.type!] ?? 0) + 1;
      } else if (r.status === 200) {
        report.accepted++;
        report.failures.push(`${c.name}: ${j.problem}: ${String(c.body).slice(0, 300)}`);
      } else {
        report.untyped++;
        report.failures.push(`${c.name}: ${j.problem}`);
      }
      if (i % every === every - 1) {
        // A valid request right after hostile ones: the service is still up and answering.
        report.livenessChecks++;
        const s = f.sealed[i % f.sealed.length]!;
        const ok = await kms.send(new DecryptCommand({ CiphertextBlob: s.blob, EncryptionContext: s.context })).then(
          (d) => Buffer.from(d.Plaintext!).equals(s.plaintext),
          () => false,
        );
        if (!ok) {
          report.damaged++;
          report.failures.push(`after ${c.name}: a valid Decrypt failed`);
        }
      }
    }
    for (const p of await damage(kms, f)) {
      report.damaged++;
      report.failures.push(`after the run: ${p}`);
    }
    // What is on disk must be whole too: a restarted service reads it back.
    await service.close();
    service = await start();
    kms = client();
    for (const p of await damage(kms, f)) {
      report.damaged++;
      report.failures.push(`after a restart: ${p}`);
    }
  } finally {
    for (const c of clients) c.destroy();
    await service.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return report;
}
