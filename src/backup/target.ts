import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { CorruptDataError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { BACKUP_FILE, SNAPSHOTS_DIR, decodeManifest, snapshotDir, type BackupFileEntry, type BackupManifest } from './format.js';
import { hashFile, walkTree } from './files.js';

/** A backup directory as read from disk: its snapshots, and what else lies there. */
export interface BackupTarget {
  dir: string;
  /** Snapshots with a manifest, oldest first. */
  snapshots: { n: number; manifest: BackupManifest; file: string }[];
  /** Files no manifest lists (and that are not manifests). */
  extra: string[];
  /** Snapshot directories without a manifest (an interrupted backup, or a removed manifest). */
  incomplete: number[];
}

const SNAPSHOT_NAME = /^\d{8}$/;

/** Reads every snapshot manifest of a backup directory (structure only) and finds files none of them lists. */
export async function readTarget(dir: string): Promise<BackupTarget> {
  const root = resolve(dir);
  let tree;
  try {
    tree = await walkTree(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`no backup at ${root}`, { cause: err });
    throw err;
  }
  const snapshots: BackupTarget['snapshots'] = [];
  const incomplete: number[] = [];
  const snapDirs = tree.filter((e) => e.kind === 'dir' && e.path.startsWith(`${SNAPSHOTS_DIR}/`) && e.path.split('/').length === 2);
  for (const d of snapDirs) {
    const name = d.path.slice(SNAPSHOTS_DIR.length + 1);
    if (!SNAPSHOT_NAME.test(name)) continue;
    const n = Number(name);
    const file = join(root, d.path, BACKUP_FILE);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        incomplete.push(n);
        continue;
      }
      throw err;
    }
    snapshots.push({ n, manifest: decodeManifest(bytes, file, n), file });
  }
  snapshots.sort((a, b) => a.n - b.n);
  const storeIds = new Set(snapshots.map((s) => s.manifest.storeId));
  if (storeIds.size > 1) {
    throw new CorruptDataError(`backup directory holds snapshots of ${storeIds.size} different stores`, { file: root, reason: 'foreign' });
  }
  const known = new Set<string>();
  for (const s of snapshots) {
    known.add(`${snapshotDir(s.n)}/${BACKUP_FILE}`);
    for (const f of s.manifest.files) known.add(f.stored);
  }
  const extra = tree.filter((e) => e.kind !== 'dir' && !known.has(e.path)).map((e) => join(root, e.path));
  return { dir: root, snapshots, extra, incomplete };
}

/** The snapshot to use: `n`, or the newest. */
export function pickSnapshot(target: BackupTarget, n?: number): BackupTarget['snapshots'][number] {
  if (target.snapshots.length === 0) {
    throw new NotFoundError(`no backup snapshot in ${target.dir}${target.incomplete.length > 0 ? ' (only an incomplete one)' : ''}`);
  }
  if (n === undefined) return target.snapshots.at(-1) as BackupTarget['snapshots'][number];
  const s = target.snapshots.find((x) => x.n === n);
  if (!s) throw new NotFoundError(`no snapshot ${n} in ${target.dir} (there are ${target.snapshots.map((x) => x.n).join(', ')})`);
  return s;
}

/** Throws CorruptDataError naming the first file that lies in the backup without being listed. */
export function assertNoExtra(target: BackupTarget): void {
  const first = target.extra[0];
  if (first !== undefined) {
    throw new CorruptDataError(`file is not part of any backup snapshot (${target.extra.length} such file(s))`, {
      file: first,
      reason: 'extra',
    });
  }
}

/** Checks one listed file: present, of its length, with its SHA-256. */
export async function checkFile(root: string, f: BackupFileEntry): Promise<void> {
  const file = join(root, f.stored);
  let st;
  try {
    st = await fs.lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CorruptDataError(`backup file for ${f.path} is missing`, { file, reason: 'missing', cause: err });
    }
    throw err;
  }
  if (!st.isFile()) throw new CorruptDataError(`backup file for ${f.path} is not a regular file`, { file, reason: 'type' });
  if (st.size !== f.length) {
    throw new CorruptDataError(`backup file for ${f.path} has ${st.size} bytes, the manifest says ${f.length}`, { file, reason: 'length' });
  }
  const got = await hashFile(file);
  if (got.sha256 !== f.sha256 || got.length !== f.length) {
    throw new CorruptDataError(`backup file for ${f.path} does not match its SHA-256 in the manifest`, { file, reason: 'hash' });
  }
}

export function checkSnapshotNumber(n: unknown): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > 99_999_999) {
    throw new InvalidArgumentError(`"snapshot" expected an integer in 1..99999999, got ${String(n)}`);
  }
  return n;
}
