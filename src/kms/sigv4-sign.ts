import { createHash, createHmac } from 'node:crypto';

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * Signs one KMS JSON request (POST /) with SigV4 over content-type, host,
 * x-amz-date and x-amz-target, the headers the key service requires. Used
 * between regions (ReplicateKey) and by the load generator, which signs once
 * and replays; SDK clients do their own signing.
 */
export function signKmsRequest(options: {
  host: string;
  region: string;
  target: string;
  body: string;
  credentials: SigningCredentials;
  date?: Date;
}): Record<string, string> {
  const amzDate = (options.date ?? new Date())
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': 'application/x-amz-json-1.1',
    host: options.host,
    'x-amz-date': amzDate,
    'x-amz-target': `TrentService.${options.target}`,
  };
  if (options.credentials.sessionToken !== undefined) headers['x-amz-security-token'] = options.credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonical = ['POST', '/', '', names.map((k) => `${k}:${headers[k]}\n`).join(''), names.join(';'), sha256(options.body)].join('\n');
  const scope = `${day}/${options.region}/kms/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${options.credentials.secretAccessKey}`, day), options.region), 'kms'), 'aws4_request');
  const signature = hmac(key, toSign).toString('hex');
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${options.credentials.accessKeyId}/${scope}, ` +
    `SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
