import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, relative } from 'node:path';

/** Identity of one data file: what must not change when a KEK rotates. */
export interface FileFingerprint {
  path: string;
  size: number;
  sha256: string;
  mtimeMs: number;
}

/** Files that hold no data (lock, keyring, store state, audit trail) and legitimately change on rotation. */
const NOT_DATA = new Set(['LOCK', 'KEYRING', 'STATE', 'audit.log']);

/** SHA-256, size and mtime of every data file under a store directory, sorted by path. */
export async function fingerprintDataFiles(dir: string): Promise<FileFingerprint[]> {
  const out: FileFingerprint[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && !(d === dir && NOT_DATA.has(e.name))) {
        const [bytes, st] = await Promise.all([fs.readFile(p), fs.stat(p)]);
        out.push({ path: relative(dir, p), size: st.size, sha256: createHash('sha256').update(bytes).digest('hex'), mtimeMs: st.mtimeMs });
      }
    }
  };
  await walk(dir);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

export interface FingerprintDiff {
  files: number;
  identical: boolean;
  changed: string[];
}

export function compareFingerprints(before: FileFingerprint[], after: FileFingerprint[]): FingerprintDiff {
  const a = new Map(before.map((f) => [f.path, f]));
  const changed = new Set<string>();
  for (const f of after) {
    const o = a.get(f.path);
    if (!o || o.sha256 !== f.sha256 || o.mtimeMs !== f.mtimeMs || o.size !== f.size) changed.add(f.path);
    a.delete(f.path);
  }
  for (const p of a.keys()) changed.add(p);
  return { files: before.length, identical: changed.size === 0, changed: [...changed].sort() };
}
