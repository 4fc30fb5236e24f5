import { readFileSync } from 'node:fs';
import { auditFilePath, parseEntry, type AuditEntry } from '../../src/audit/index.js';
import type { OpenStoreOptions, Store } from '../../src/store/index.js';
import { openTestStore, type TestStoreDirs } from '../helpers/store.js';

export const DAY = 86_400_000;

/** openTestStore with the lifecycle tests' staging dir and principal (their audit entries name it). */
export const openLifecycleStore = (d: TestStoreDirs, extra: Partial<OpenStoreOptions> = {}): Promise<Store> =>
  openTestStore(d, { stagingDir: d.stagingDir, principal: 'app:test', ...extra });

/** A distinctive vector for record i of a collection. */
export function vectorOf(i: number, dim = 8, salt = 0): number[] {
  return Array.from({ length: dim }, (_, j) => salt + i + j / dim);
}

/** The entries of a store's audit trail (unverified; see verifyAuditTrail). */
export function auditEntries(dir: string): AuditEntry[] {
  return readFileSync(auditFilePath(dir), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => parseEntry(l))
    .filter((e): e is AuditEntry => typeof e !== 'string');
}
