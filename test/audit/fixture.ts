import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditTrail, type AuditHead } from '../../src/audit/index.js';

const ACTIONS = [
  'generate',
  'unwrap',
  'wrap',
  'rewrap',
  'rotate-kek',
  'rotate-dek',
  'disable',
  'enable',
  'schedule-deletion',
  'cancel-deletion',
  'shred',
  'destroy',
];

export interface Trail {
  file: string;
  key: Uint8Array;
  head: AuditHead;
}

/**
 * A closed trail of `total` entries: the trail-open entry, `total - 2` key
 * operations (some denied or failed) and the close checkpoint.
 */
export async function writeTrail(dir: string, total = 50): Promise<Trail> {
  const file = join(dir, 'audit.log');
  const key = new Uint8Array(randomBytes(32));
  const trail = await AuditTrail.open({ file, macKey: key, principal: 'app@test' });
  for (let i = 1; i < total - 1; i++) {
    trail.record({
      action: ACTIONS[i % ACTIONS.length]!,
      outcome: i % 7 === 0 ? 'denied' : i % 11 === 0 ? 'error' : 'ok',
      tenant: `tenant-${i % 3}`,
      collectionId: `c-${i % 5}`,
      kek: 'store-kek',
      kekVersion: String(1 + (i % 2)),
      dekVersion: 1 + (i % 4),
      ...(i % 11 === 0 ? { error: 'VS_KEY_DISABLED' } : {}),
    });
  }
  const head = await trail.close();
  return { file, key, head };
}

export function lines(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return text.split('\n').slice(0, -1);
}

/** Writes `edit(lines)` to a copy of the trail and returns the copy's path. */
export function tamperedCopy(file: string, name: string, edit: (lines: string[]) => string[], finalNewline = true): string {
  const copy = `${file}.${name}`;
  copyFileSync(file, copy);
  const edited = edit(lines(file));
  writeFileSync(copy, edited.join('\n') + (finalNewline && edited.length > 0 ? '\n' : ''));
  return copy;
}

/** One line with a field changed (JSON-level, so the line stays well-formed). */
export function withField(line: string, field: string, value: unknown): string {
  return JSON.stringify({ ...JSON.parse(line), [field]: value });
}
