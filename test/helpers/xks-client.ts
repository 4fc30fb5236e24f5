import { request, type Agent } from 'node:https';
import { signRequest } from '../../src/util/sigv4.js';

/** A raw XKS call: signs (or mis-signs) the body and returns the status and parsed JSON. For negative tests. */
export interface XksCall {
  url: string;
  path: string;
  body: unknown;
  ca: Buffer;
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  service?: string;
  /** Signing time, epoch ms (default now). */
  at?: number;
  method?: string;
  unsigned?: boolean;
  cert?: Buffer;
  key?: Buffer;
  maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** A keep-alive agent (default: a fresh connection per call). */
  agent?: Agent;
}

export function xksCall(c: XksCall): Promise<{ status: number; body: Record<string, unknown> }> {
  const u = new URL(c.url);
  const raw = typeof c.body === 'string' ? Buffer.from(c.body) : Buffer.from(JSON.stringify(c.body));
  const method = c.method ?? 'POST';
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(raw.length) };
  if (!c.unsigned) {
    Object.assign(
      headers,
      signRequest({
        method,
        host: u.host,
        path: c.path,
        body: raw,
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        region: c.region ?? 'us-east-1',
        service: c.service ?? 'kms-xks-proxy',
        now: c.at ?? Date.now(),
      }),
    );
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: c.path,
        method,
        headers,
        ca: c.ca,
        ...(c.cert ? { cert: c.cert, key: c.key } : {}),
        ...(c.maxVersion ? { maxVersion: c.maxVersion, minVersion: 'TLSv1' } : {}),
        agent: c.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(raw);
  });
}
