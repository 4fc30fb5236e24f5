import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { auditFilePath, parseEntry, type AuditEntry } from '../../src/audit/index.js';
import { openStore, type OpenStoreOptions, type Store } from '../../src/store/index.js';

export const DAY = 86_400_000;

export interface Dirs {
  root: string;
  dir: string;
  keyDir: string;
  stagingDir: string;
}

/** A temp root with data, key (outside the data) and RAM staging dirs; removed after the test. */
export function lifecycleDirs(): Dirs {
  const root = mkdtempSync(join(tmpdir(), 'vs-life-'));
  const stagingDir = join('/dev/shm', `vs-life-${process.pid}-${Math.random().toString(36).slice(2)}`);
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(stagingDir, { recursive: true, force: true });
  });
  return { root, dir: join(root, 'data'), keyDir: join(root, 'keys'), stagingDir };
}

const open: Store[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close({ flush: false }).catch(() => undefined);
});

/** Opens (creating) a store with its local KEK in d.keyDir; closed after the test if the test did not. */
export async function openLifecycleStore(d: Dirs, extra: Partial<OpenStoreOptions> = {}): Promise<Store> {
  const s = await openStore({ dir: d.dir, create: true, keys: { provider: 'local', keyDir: d.keyDir }, stagingDir: d.stagingDir, principal: 'app:test', ...extra });
  open.push(s);
  return s;
}

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
