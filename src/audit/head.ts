import { InvalidArgumentError } from '../errors.js';
import type { AuditHead } from './entry.js';

/** `<trail>:<seq>:<mac>`, the form the CLI prints and takes back with `--head`. */
export function formatAuditHead(head: AuditHead): string {
  return `${head.trail}:${head.seq}:${head.mac}`;
}

/** Parses {@link formatAuditHead}'s output. */
export function parseAuditHead(text: string): AuditHead {
  const match = /^([^:\s]+):(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  if (match === null) {
    throw new InvalidArgumentError('audit head expected "<trail>:<seq>:<64 hex mac>"');
  }
  return { trail: match[1]!, seq: Number(match[2]), mac: match[3]! };
}
