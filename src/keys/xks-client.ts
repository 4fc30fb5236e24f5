import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:https';
import {
  AccessDeniedError,
  InvalidArgumentError,
  KeyDestroyedError,
  KeyDisabledError,
  KeyProviderUnavailableError,
  UnsupportedOperationError,
  type VectorsealError,
} from '../errors.js';
import { signRequest } from '../util/sigv4.js';
import { wrapAuthFailure } from './provider.js';

/**
 * A SigV4-signed HTTPS client for an XKS proxy (the AWS KMS XKS Proxy API),
 * as AWS KMS itself calls one: POST JSON to `<uriPrefix>/keys/<id>/<op>`,
 * signed for service `kms-xks-proxy`. The proxy's error names map to
 * vectorseal's typed errors; a proxy that cannot be reached is
 * KeyProviderUnavailableError.
 */

export interface XksConnection {
  /** `https://host:port` of the proxy. */
  endpoint: string;
  /** XksProxyUriPath, e.g. `/example/kms/xks/v1`. */
  uriPrefix: string;
  /** The region the proxy expects in the credential scope. */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** PEM CA to trust for the proxy's certificate (default: the system's). */
  ca?: string | Buffer;
  /** Mutual TLS client certificate and key (PEM). */
  clientCert?: string | Buffer;
  clientKey?: string | Buffer;
  /** The awsPrincipalArn sent in the request metadata (default `vectorseal`). */
  principal?: string;
  /** Per-request timeout. Default 2000 ms. */
  timeoutMs?: number;
}

export class XksClient {
  private readonly agent: Agent;
  private readonly url: URL;

  constructor(private readonly c: XksConnection) {
    let url: URL;
    try {
      url = new URL(c.endpoint);
    } catch {
      throw new InvalidArgumentError(`"endpoint" expected an https:// URL, got "${String(c.endpoint)}"`);
    }
    if (url.protocol !== 'https:') throw new InvalidArgumentError('an XKS proxy is reached over HTTPS only');
    if (!/^(\/[A-Za-z0-9_-]+)*\/kms\/xks\/v1$/.test(c.uriPrefix))
      throw new InvalidArgumentError('"uriPrefix" expected [/<prefix>]/kms/xks/v1');
    this.url = url;
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      minVersion: 'TLSv1.2',
      ...(c.ca ? { ca: c.ca } : {}),
      ...(c.clientCert ? { cert: c.clientCert, key: c.clientKey } : {}),
    });
  }

  /** Calls one XKS operation; `kmsOperation` goes into the request metadata for the proxy's audit and rules. */
  async call(path: string, kmsOperation: string, fields: Record<string, unknown>, keyArn: string): Promise<Record<string, unknown>> {
    const body = Buffer.from(
      JSON.stringify({
        requestMetadata: { awsPrincipalArn: this.c.principal ?? 'vectorseal', kmsKeyArn: keyArn, kmsOperation, kmsRequestId: randomUUID() },
        ...fields,
      }),
    );
    const fullPath = `${this.c.uriPrefix}${path}`;
    const signed = signRequest({
      method: 'POST',
      host: this.url.host,
      path: fullPath,
      body,
      accessKeyId: this.c.accessKeyId,
      secretAccessKey: this.c.secretAccessKey,
      region: this.c.region,
      service: 'kms-xks-proxy',
      now: Date.now(),
    });
    const { status, json } = await this.send(fullPath, body, signed);
    if (status === 200) return json;
    throw mapXksError(status, typeof json['errorName'] === 'string' ? json['errorName'] : undefined, path);
  }

  close(): void {
    this.agent.destroy();
  }

  private send(path: string, body: Buffer, signed: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.url.hostname,
          port: this.url.port || 443,
          path,
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...signed },
          timeout: this.c.timeoutMs ?? 2000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            let json: Record<string, unknown> = {};
            try {
              const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
            } catch {
              // A malformed body is judged by its status below.
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
          res.on('error', (err) => reject(unreachable(this.c.endpoint, err)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => reject(unreachable(this.c.endpoint, err)));
      req.end(body);
    });
  }
}

function unreachable(endpoint: string, cause: unknown): KeyProviderUnavailableError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  return new KeyProviderUnavailableError(`XKS proxy ${endpoint} could not be reached${code ? ` (${code})` : ''}`, { cause });
}

/** The typed error for an XKS error response. */
export function mapXksError(status: number, name: string | undefined, path: string): VectorsealError {
  const m = `XKS proxy answered ${status} ${name ?? '(no errorName)'} for ${path}`;
  switch (name) {
    case 'AuthenticationFailedException':
    case 'AccessDeniedException':
      return new AccessDeniedError(m);
    case 'KeyNotFoundException':
      return new KeyDestroyedError(m);
    case 'InvalidStateException':
      return new KeyDisabledError(m);
    case 'InvalidCiphertextException':
      return wrapAuthFailure(new Error(m));
    case 'InvalidKeyUsageException':
    case 'UnsupportedOperationException':
      return new UnsupportedOperationError(m);
    case 'ValidationException':
      return new InvalidArgumentError(m);
    default:
      return new KeyProviderUnavailableError(m);
  }
}
