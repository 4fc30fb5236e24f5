import { join } from 'node:path';
import { CorruptDataError } from '../errors.js';
import { KeyManager, type KekConfig, type KeyAuditEvent, type ProviderFactory } from '../keys/key-manager.js';
import { readManifest, segmentFile } from '../storage/manifest.js';
import { readSegment, type DekLookup } from '../storage/segment.js';
import { readWal, walFileName } from '../storage/wal.js';
import { readCatalog } from '../store/catalog.js';
import { BACKUP_KEY_ID, checkMac, snapshotDir, type BackupManifest } from './format.js';
import { assertNoExtra, checkFile, pickSnapshot, readTarget, type BackupTarget } from './target.js';

/** How to reach the KEKs named in a backup's keyring. */
export interface BackupKeyOptions {
  /** The KEKs the backup's keyring names, as openStore's `keks` (the keyring says only which keys, never how to reach them). */
  keks?: Record<string, KekConfig>;
  /** Where local master keys are (default as for openStore). */
  localKeyDir?: string;
  /** KEK provider factories (AWS KMS with explicit credentials, PKCS#11 with a PIN, ...). */
  providers?: Record<string, ProviderFactory>;
  audit?: (event: KeyAuditEvent) => void;
  principal?: string;
}

export interface VerifyBackupOptions extends BackupKeyOptions {
  /** Also check the MACs, that every DEK unwraps and every segment, manifest and WAL file opens. */
  withKeys?: boolean;
  /** The snapshot whose files are opened with keys (default the newest). Hashes are checked for all. */
  snapshot?: number;
  onProgress?: (p: { files: number; totalFiles: number }) => void;
}

export interface VerifyBackupReport {
  dir: string;
  storeId: string;
  snapshots: number[];
  /** Distinct stored files checked (length and SHA-256). */
  files: number;
  bytes: number;
  /** 'verified' with keys; 'not checked' without. */
  mac: 'verified' | 'not checked';
  /** With keys: what was opened in the chosen snapshot. */
  opened?: { snapshot: number; deks: number; manifests: number; segments: number; walFiles: number; walRecords: number };
}

/**
 * Checks a backup directory. Without keys: every manifest's structure, every
 * listed file present with its length and SHA-256, and no file that no
 * manifest lists. With keys, also every snapshot's MAC, and for the chosen
 * snapshot that every DEK unwraps and every collection manifest, segment and
 * WAL file opens (decrypted in memory, zeroed, never written). The first
 * problem is thrown as a typed error naming the file (CorruptDataError,
 * or the key error that stops a DEK from unwrapping).
 */
export async function verifyBackup(from: string, options: VerifyBackupOptions = {}): Promise<VerifyBackupReport> {
  const target = await readTarget(from);
  assertNoExtra(target);
  if (target.incomplete.length > 0) {
    const n = target.incomplete[0] as number;
    throw new CorruptDataError(
      `snapshot ${n} has no manifest (removed, or an interrupted backup; the next backup into this directory removes it)`,
      {
        file: join(target.dir, snapshotDir(n), 'BACKUP'),
        reason: 'missing',
      },
    );
  }
  const chosen = pickSnapshot(target, options.snapshot);
  const seen = new Map<string, number>();
  for (const s of target.snapshots) for (const f of s.manifest.files) seen.set(f.stored, f.length);
  let done = 0;
  const checked = new Set<string>();
  for (const s of target.snapshots) {
    for (const f of s.manifest.files) {
      if (checked.has(f.stored)) continue;
      await checkFile(target.dir, f);
      checked.add(f.stored);
      options.onProgress?.({ files: ++done, totalFiles: seen.size });
    }
  }
  const report: VerifyBackupReport = {
    dir: target.dir,
    storeId: chosen.manifest.storeId,
    snapshots: target.snapshots.map((s) => s.n),
    files: checked.size,
    bytes: [...seen.values()].reduce((a, b) => a + b, 0),
    mac: 'not checked',
  };
  if (!options.withKeys) return report;
  for (const s of target.snapshots) {
    await withSnapshotKeys(target, s.n, options, async (keys) => {
      if (s.n === chosen.n) report.opened = await openEverything(target, s.manifest, keys);
    });
  }
  report.mac = 'verified';
  return report;
}

/**
 * Opens the keyring of snapshot `n` (read in place, never written), checks
 * the snapshot's MAC with it, and runs `fn` with it.
 */
export async function withSnapshotKeys<T>(
  target: BackupTarget,
  n: number,
  options: BackupKeyOptions,
  fn: (keys: KeyManager) => Promise<T>,
): Promise<T> {
  const s = pickSnapshot(target, n);
  const dir = join(target.dir, snapshotDir(n));
  const keyring = s.manifest.files.find((f) => f.path === 'KEYRING');
  if (keyring) await checkFile(target.dir, keyring);
  const keys = await KeyManager.open({
    dir,
    file: join(dir, 'KEYRING'),
    storeId: s.manifest.storeId,
    ...(options.keks === undefined ? {} : { keks: options.keks }),
    ...(options.localKeyDir === undefined ? {} : { localKeyDir: options.localKeyDir }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    ...(options.principal === undefined ? {} : { principal: options.principal }),
  });
  try {
    if (keys.storeId !== s.manifest.storeId) {
      throw new CorruptDataError('the snapshot keyring belongs to another store', { file: join(dir, 'KEYRING'), reason: 'foreign' });
    }
    const lease = await keys.leaseDek(BACKUP_KEY_ID, s.manifest.mac.keyVersion);
    try {
      checkMac(s.manifest, lease.key, s.file);
    } finally {
      lease.release();
    }
    return await fn(keys);
  } finally {
    await keys.close();
  }
}

async function openEverything(
  target: BackupTarget,
  m: BackupManifest,
  keys: KeyManager,
): Promise<NonNullable<VerifyBackupReport['opened']>> {
  const dir = join(target.dir, snapshotDir(m.snapshot));
  const opened = { snapshot: m.snapshot, deks: 0, manifests: 0, segments: 0, walFiles: 0, walRecords: 0 };
  const ring = keys.keyring;
  for (const [cid, col] of [...Object.entries(ring.collections), ...Object.entries(ring.system ?? {})]) {
    for (const d of col.deks) {
      if (d.state === 'destroyed') continue;
      await keys.withDek(cid, d.version, () => undefined);
      opened.deks += 1;
    }
  }
  const catalog = await readCatalog(dir);
  const byPath = new Map(m.files.map((f) => [f.path, f]));
  for (const c of m.collections) {
    if (!catalog.some((i) => i.id === c.id)) {
      throw new CorruptDataError(`collection ${c.id} is in the snapshot but not in its catalog`, {
        file: join(dir, 'CATALOG'),
        reason: 'catalog',
      });
    }
    const keyFor: DekLookup = (v) => keys.withDek(c.id, v, (k) => Buffer.from(k));
    const leased: Buffer[] = [];
    const keyForZeroed: DekLookup = async (v) => {
      const k = (await keyFor(v)) as Buffer;
      leased.push(k);
      return k;
    };
    try {
      const cdir = join(dir, 'collections', c.id);
      const manifest = await readManifest(cdir, m.storeId, c.id, keyForZeroed);
      opened.manifests += 1;
      if (manifest.generation !== c.generation) {
        throw new CorruptDataError(`collection manifest has generation ${manifest.generation}, the backup says ${c.generation}`, {
          file: join(cdir, 'MANIFEST'),
          reason: 'rollback',
        });
      }
      for (const g of manifest.groups) {
        for (const f of g.files) {
          const entry = byPath.get(segmentFile(`collections/${c.id}`, g.id, f.kind));
          if (!entry || entry.sha256 !== f.sha256 || entry.length !== f.length) {
            throw new CorruptDataError(`segment ${g.id} (${f.kind}) listed by the collection manifest is not in the backup`, {
              file: join(cdir, 'MANIFEST'),
              reason: 'missing',
            });
          }
          const plain = await readSegment(
            join(target.dir, entry.stored),
            { storeId: m.storeId, collectionId: c.id, kind: f.kind, segmentId: g.id, dekVersion: f.dekVersion, length: f.length },
            keyForZeroed,
          );
          plain.fill(0);
          opened.segments += 1;
        }
      }
      for (let s = c.firstWalSeq; s <= c.lastWalSeq; s++) {
        const entry = byPath.get(`collections/${c.id}/wal/${walFileName(s)}`);
        if (!entry)
          throw new CorruptDataError(`WAL file ${s} is not in the backup`, { file: join(cdir, 'wal', walFileName(s)), reason: 'missing' });
        const wal = await readWal(join(target.dir, entry.stored), { storeId: m.storeId, collectionId: c.id, walSeq: s }, keyForZeroed);
        for (const r of wal.records) r.fill(0);
        if (wal.truncated > 0)
          throw new CorruptDataError('WAL file in a backup has a torn tail', { file: join(target.dir, entry.stored), reason: 'truncated' });
        opened.walFiles += 1;
        opened.walRecords += wal.records.length;
      }
    } finally {
      for (const k of leased) k.fill(0);
    }
  }
  return opened;
}
