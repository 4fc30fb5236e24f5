import { randomBytes } from 'node:crypto';
import type { KeyServiceConfig, PolicyStatement, PrincipalConfig } from './config.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A new access key pair for a principal: a 20-character id (AKIA-like) and a 40-character secret. */
export function createAccessKey(name: string, policy: PolicyStatement[]): PrincipalConfig {
  const raw = randomBytes(16);
  let id = 'VSKA';
  for (const byte of raw) id += ID_ALPHABET[byte % 32];
  return { name, accessKeyId: id, secretAccessKey: randomBytes(30).toString('base64').replace(/[+/]/g, 'x'), policy };
}

/** A starter configuration with one administrator allowed everything. */
export function createKeyServiceConfig(region = 'us-east-1', accountId = '000000000000'): KeyServiceConfig {
  return { region, accountId, principals: [createAccessKey('admin', [{ operations: ['*'], keys: ['*'] }])] };
}
