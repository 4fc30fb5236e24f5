import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { KmsException } from '../kms/errors.js';
import { verifySigV4 } from '../kms/sigv4.js';
import { cdiv, hsmAad, MAX_AAD_BYTES, MAX_METADATA_BYTES } from './aad.js';
import { createXksAuditLog, type XksAuditRecord } from './audit.js';
import { authorize } from './authorization.js';
import { validateXksConfig, type XksConfig } from './config.js';
import { XksError, xksErrors } from './errors.js';
import { XKS_KEY_ID, type XksHsm } from './hsm.js';

/**
 * `vectorseal xks serve`: an External Key Store proxy as the AWS KMS XKS
 * Proxy API specification defines it. HTTPS only (TLS 1.2 or later,
 * optionally mutual TLS with a configured CA and subject CN), SigV4 with
 * service `kms-xks-proxy` and a five-minute skew, the four operations under
 * the configured URI prefix, crypto inside the PKCS#11 token, secondary
 * authorization on the request metadata, an audit line per call.
 */

export interface XksProxyOptions {
  hsm: XksHsm;
  config: XksConfig;
  tls: { cert: string | Buffer; key: string | Buffer };
  /** Mutual TLS: client certificates must chain to `ca`, and (when given) have subject CN `subjectCn`. */
  mtls?: { ca: string | Buffer; subjectCn?: string };
  port?: number;
  host?: string;
  auditFile: string;
  auditStdout?: boolean;
  /** Calls allowed in the HSM at once; more are answered ThrottlingException. Default 64. */
  maxInFlight?: number;
  /** An HSM call slower than this is answered DependencyTimeoutException (AWS KMS gives up at 250 ms). Default 200. */
  hsmTimeoutMs?: number;
  /** Epoch milliseconds for the SigV4 skew check. */
  now?: () => number;
}

export interface RunningXksProxy {
  url: string;
  port: number;
  /** Swaps credentials and authorization rules without dropping connections (SigV4 credential rotation). */
  reload(config: XksConfig): void;
  close(): Promise<void>;
}

const MAX_BODY = 256 * 1024;
const MAX_DATA_BYTES = 64 * 1024;
const MAX_METADATA_FIELD = 2048;
/** The spec's TLS 1.2 suites; TLS 1.3 keeps Node's defaults (AES-256-GCM and ChaCha20 among them). */
const TLS12_CIPHERS = 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384';
const TLS13_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';
const VERSION = '0.1.0';

type Operation = 'GetKeyMetadata' | 'Encrypt' | 'Decrypt' | 'GetHealthStatus';
const OPERATIONS: Record<string, Operation> = { metadata: 'GetKeyMetadata', encrypt: 'Encrypt', decrypt: 'Decrypt' };
const REQUIRED_METADATA: Record<Operation, string[]> = {
  GetKeyMetadata: ['awsPrincipalArn', 'kmsOperation', 'kmsRequestId'],
  Encrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  Decrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  GetHealthStatus: [],
};
const LOGGED_METADATA = ['awsPrincipalArn', 'awsSourceVpc', 'awsSourceVpce', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId', 'kmsViaService'];

export async function startXksProxy(options: XksProxyOptions): Promise<RunningXksProxy> {
  let config = validateXksConfig(options.config);
  let secrets = new Map(config.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]));
  const hsm = options.hsm;
  const audit = createXksAuditLog({ file: options.auditFile, ...(options.auditStdout ? { stdout: true } : {}) });
  const maxInFlight = options.maxInFlight ?? 64;
  const hsmTimeout = options.hsmTimeoutMs ?? 200;
  const now = options.now ?? Date.now;
  let inFlight = 0;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const entry: XksAuditRecord = { requestId: randomUUID(), status: 500, durationMs: 0 };
    if (req.socket.remoteAddress !== undefined) entry.remoteAddress = req.socket.remoteAddress;
    const subject = (req.socket as TLSSocket).getPeerCertificate?.()?.subject?.CN;
    if (typeof subject === 'string') entry.clientCertSubject = subject;
    const send = (status: number, body: unknown): void => {
      entry.status = status;
      entry.durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      audit.record(entry);
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
      res.end(payload);
    };
    const fail = (err: unknown): void => {
      const e = err instanceof XksError ? err : xksErrors.internal('Internal error');
      entry.errorName = e.errorName;
      send(e.status, e.toJSON());
    };
    readBody(req).then(
      async (body) => {
        try {
          send(200, await serve(req, body, entry));
        } catch (err) {
          fail(err);
        }
      },
      (err: unknown) => {
        res.setHeader('Connection', 'close');
        fail(err);
      },
    );
  };

  const serve = async (req: IncomingMessage, body: Buffer, entry: XksAuditRecord): Promise<unknown> => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const route = parseRoute(config.uriPrefix, path);
    if (req.method === 'GET' && path === '/ping') return { status: 'ok' };
    if (req.method !== 'POST') {
      if (route !== undefined) throw new XksError('ValidationException', 'XKS APIs accept POST only', 405);
      throw xksErrors.invalidUriPath(`No XKS API at ${truncate(path)}`);
    }
    try {
      const { accessKeyId } = verifySigV4(
        { method: req.method, url, rawHeaders: req.rawHeaders, body },
        {
          region: config.region,
          service: 'kms-xks-proxy',
          now: now(),
          maxSkewMs: 5 * 60 * 1000,
          // The spec: KMS signs host and x-amz-date (the operation is in the signed path).
          requiredSignedHeaders: ['host', 'x-amz-date'],
          secretFor: (id) => secrets.get(id),
        },
      );
      entry.accessKeyId = accessKeyId;
    } catch (err) {
      if (err instanceof KmsException) throw xksErrors.authenticationFailed(`SigV4 authentication failed: ${err.type}: ${err.message}`);
      throw err;
    }
    if (route === undefined) throw xksErrors.invalidUriPath(`No XKS API at ${truncate(path)}`);
    entry.operation = route.operation;
    if (route.externalKeyId !== undefined) entry.externalKeyId = truncate(route.externalKeyId);

    const input = parseBody(body, route.operation);
    const metadata = requestMetadata(input, route.operation);
    const logged: Record<string, string> = {};
    for (const f of LOGGED_METADATA) if (metadata[f] !== undefined) logged[f] = metadata[f]!;
    entry.requestMetadata = logged;

    if (inFlight >= maxInFlight) throw xksErrors.throttling(`More than ${maxInFlight} requests in flight`);
    inFlight += 1;
    try {
      if (route.operation === 'GetHealthStatus') return await health();
      const keyId = route.externalKeyId!;
      if (!XKS_KEY_ID.test(keyId)) throw xksErrors.validation('externalKeyId expected 1-128 characters of A-Z a-z 0-9 . - _');
      const decision = authorize(config.authorization, { operation: route.operation, externalKeyId: keyId, metadata });
      if (!decision.allowed) {
        entry.authorization = `denied: ${decision.reason}`;
        throw xksErrors.accessDenied('The request is not authorized by the proxy policy');
      }
      if (decision.rule !== undefined) entry.authorization = `allowed by ${decision.rule}`;
      if (route.operation === 'GetKeyMetadata') return await getKeyMetadata(keyId);
      if (route.operation === 'Encrypt') return await encrypt(keyId, input);
      return await decrypt(keyId, input);
    } finally {
      inFlight -= 1;
    }
  };

  const withTimeout = <T>(p: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(xksErrors.dependencyTimeout(`The external key manager did not answer within ${hsmTimeout} ms`)),
        hsmTimeout,
      );
    });
    // A late answer from the HSM is dropped; its rejection must not go unhandled.
    p.catch(() => undefined);
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  };

  const getKeyMetadata = async (keyId: string) => {
    const m = await withTimeout(hsm.metadata(keyId));
    const keyUsage = [...(m.encrypt ? ['ENCRYPT'] : []), ...(m.decrypt ? ['DECRYPT'] : [])];
    return { keySpec: 'AES_256', keyUsage, keyStatus: m.enabled ? 'ENABLED' : 'DISABLED' };
  };

  const encrypt = async (keyId: string, input: Record<string, unknown>) => {
    const plaintext = base64Field(input, 'plaintext', true, MAX_DATA_BYTES)!;
    algorithm(input);
    const aad = base64Field(input, 'additionalAuthenticatedData', false, MAX_AAD_BYTES);
    const cdivAlgorithm = stringField(input, 'ciphertextDataIntegrityValueAlgorithm');
    if (cdivAlgorithm !== undefined && cdivAlgorithm !== 'SHA_256')
      throw xksErrors.validation('ciphertextDataIntegrityValueAlgorithm must be SHA_256');
    const hsmAadBytes = hsmAad(aad, undefined);
    try {
      const out = await withTimeout(hsm.encrypt(keyId, plaintext, hsmAadBytes));
      const response: Record<string, string> = {
        ciphertext: out.ciphertext.toString('base64'),
        initializationVector: out.iv.toString('base64'),
        authenticationTag: out.tag.toString('base64'),
      };
      if (cdivAlgorithm !== undefined) {
        // Appendix C: the CDIV first, over the output as it will be sent; then prove it decrypts.
        const value = cdiv({ ...(aad ? { aad } : {}), iv: out.iv, ciphertext: out.ciphertext, tag: out.tag });
        const meta = await withTimeout(hsm.metadata(keyId));
        if (meta.decrypt) {
          const check = await withTimeout(hsm.decrypt(keyId, out.iv, hsmAadBytes, out.ciphertext, out.tag)).catch(() => undefined);
          const ok = check !== undefined && check.equals(plaintext);
          check?.fill(0);
          if (!ok) throw xksErrors.internal('The ciphertext failed its decrypt check');
        }
        response['ciphertextDataIntegrityValue'] = value.toString('base64');
      }
      return response;
    } finally {
      plaintext.fill(0);
    }
  };

  const decrypt = async (keyId: string, input: Record<string, unknown>) => {
    algorithm(input);
    const ciphertext = base64Field(input, 'ciphertext', true, MAX_DATA_BYTES)!;
    const iv = base64Field(input, 'initializationVector', true, 64, 'validation')!;
    const tag = base64Field(input, 'authenticationTag', true, 64, 'validation')!;
    const aad = base64Field(input, 'additionalAuthenticatedData', false, MAX_AAD_BYTES);
    const metadata = base64Field(input, 'ciphertextMetadata', false, MAX_METADATA_BYTES, 'validation');
    if (iv.length !== 12 && iv.length !== 16) throw xksErrors.invalidCiphertext('initializationVector must be 12 or 16 bytes');
    if (tag.length !== 16) throw xksErrors.invalidCiphertext('authenticationTag must be 16 bytes');
    const plaintext = await withTimeout(hsm.decrypt(keyId, iv, hsmAad(aad, metadata), ciphertext, tag));
    try {
      return { plaintext: plaintext.toString('base64') };
    } finally {
      plaintext.fill(0);
    }
  };

  const health = async () => {
    const ok = await withTimeout(hsm.healthy()).catch(() => false);
    const info = hsm.token.info;
    return {
      xksProxyFleetSize: 1,
      xksProxyVendor: 'vectorseal',
      xksProxyModel: `vectorseal xks proxy ${VERSION}`,
      ekmVendor: info.manufacturer || 'unknown',
      ekmFleetDetails: [
        { id: info.serialNumber || info.label, model: info.model || 'unknown', healthStatus: ok ? 'ACTIVE' : 'UNAVAILABLE' },
      ],
    };
  };

  const server: Server = createServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      minVersion: 'TLSv1.2',
      ciphers: `${TLS13_CIPHERS}:${TLS12_CIPHERS}`,
      ...(options.mtls ? { requestCert: true, rejectUnauthorized: true, ca: options.mtls.ca } : {}),
    },
    handle,
  );
  if (options.mtls?.subjectCn !== undefined) {
    const cn = options.mtls.subjectCn;
    // The chain is checked during the handshake; the subject right after it, before any request is read.
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.getPeerCertificate()?.subject?.CN !== cn) socket.destroy();
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `https://${options.host ?? '127.0.0.1'}:${address.port}`,
    port: address.port,
    reload(next) {
      const checked = validateXksConfig(next);
      config = checked;
      secrets = new Map(checked.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]));
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await audit.close();
    },
  };
}

function parseRoute(prefix: string, path: string): { operation: Operation; externalKeyId?: string } | undefined {
  if (!path.startsWith(`${prefix}/`)) return undefined;
  const rest = path.slice(prefix.length + 1);
  if (rest === 'health') return { operation: 'GetHealthStatus' };
  const m = /^keys\/([^/]+)\/(metadata|encrypt|decrypt)$/.exec(rest);
  if (!m) return undefined;
  let id: string;
  try {
    id = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return { operation: OPERATIONS[m[2]!]!, externalKeyId: id };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.pause();
        reject(xksErrors.unsupportedOperation(`Request body exceeds ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => reject(xksErrors.validation('The request body could not be read')));
  });
}

function parseBody(body: Buffer, operation: Operation): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    if (operation === 'GetHealthStatus') return {};
    throw xksErrors.validation('The request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    if (operation === 'GetHealthStatus') return {};
    throw xksErrors.validation('The request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** The request metadata as own string fields; the required ones for `operation` must be present (GetHealthStatus is never rejected). */
function requestMetadata(input: Record<string, unknown>, operation: Operation): Record<string, string> {
  const raw = own(input, 'requestMetadata');
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    if (operation === 'GetHealthStatus') return out;
    throw xksErrors.validation('requestMetadata is required');
  }
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v === 'string' && v.length <= MAX_METADATA_FIELD) out[k] = v;
  }
  for (const f of REQUIRED_METADATA[operation]) {
    if (out[f] === undefined || out[f] === '')
      throw xksErrors.validation(`requestMetadata.${f} is required (a string of at most ${MAX_METADATA_FIELD} characters)`);
  }
  return out;
}

function own(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

function stringField(input: Record<string, unknown>, name: string): string | undefined {
  const v = own(input, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw xksErrors.validation(`${name} must be a string`);
  return v;
}

function algorithm(input: Record<string, unknown>): void {
  const v = stringField(input, 'encryptionAlgorithm');
  if (v !== 'AES_GCM') throw xksErrors.validation('encryptionAlgorithm must be AES_GCM');
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A standard-Base64 field. Too large: UnsupportedOperationException (the spec's
 * "exceeded the maximum size supported"), or ValidationException where the
 * spec itself sets the limit (ciphertextMetadata: 20 bytes).
 */
function base64Field(
  input: Record<string, unknown>,
  name: string,
  required: boolean,
  max: number,
  overLimit: 'unsupported' | 'validation' = 'unsupported',
): Buffer | undefined {
  const v = own(input, name);
  if (v === undefined) {
    if (required) throw xksErrors.validation(`${name} is required`);
    return undefined;
  }
  if (typeof v !== 'string' || !BASE64.test(v)) throw xksErrors.validation(`${name} must be a standard Base64 string`);
  const bytes = Buffer.from(v, 'base64');
  if (bytes.length > max) {
    const m = `${name} exceeds ${max} bytes`;
    throw overLimit === 'validation' ? xksErrors.validation(m) : xksErrors.unsupportedOperation(m);
  }
  return bytes;
}

function truncate(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}
