import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { join, relative } from 'node:path';

/** One file's identity: its size, modification time and SHA-256. */
export interface FileState {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Every file under `dir` (recursively) by relative path, except those `skip` names. */
export async function snapshotFiles(dir: string, skip: (path: string) => boolean = () => false): Promise<Map<string, FileState>> {
  const out = new Map<string, FileState>();
  const walk = async (at: string): Promise<void> => {
    for (const entry of await fs.readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      const rel = relative(dir, path);
      if (skip(rel)) continue;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const st = await fs.stat(path);
        out.set(rel, { size: st.size, mtimeMs: st.mtimeMs, sha256: await sha256File(path) });
      }
    }
  };
  await walk(dir);
  return out;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface SnapshotDiff {
  files: number;
  bytes: number;
  /** Bytes of files whose content or mtime changed, plus files added or removed. */
  bytesRewritten: number;
  changed: string[];
}

/** What changed between two snapshots of the same tree. */
export function diffSnapshots(before: Map<string, FileState>, after: Map<string, FileState>): SnapshotDiff {
  const changed: string[] = [];
  let bytesRewritten = 0;
  for (const [path, a] of after) {
    const b = before.get(path);
    if (!b || b.sha256 !== a.sha256 || b.mtimeMs !== a.mtimeMs || b.size !== a.size) {
      changed.push(path);
      bytesRewritten += a.size;
    }
  }
  for (const [path, b] of before) {
    if (!after.has(path)) {
      changed.push(path);
      bytesRewritten += b.size;
    }
  }
  let bytes = 0;
  for (const a of after.values()) bytes += a.size;
  return { files: after.size, bytes, bytesRewritten, changed };
}
