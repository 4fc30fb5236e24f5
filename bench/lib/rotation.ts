import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_FILE_NAME } from '../../src/audit/file-name.js';
import { KEYRING_FILE } from '../../src/keys/key-manager.js';
import { openStore } from '../../src/store/index.js';
import { diffSnapshots, snapshotFiles } from './file-snapshot.js';
import { progress, type Log } from './progress.js';
import { median, round, timed } from './stats.js';

/**
 * KEK rotation with the local provider: every DEK is rewrapped under a new
 * KEK version (each new wrap unwrapped again and compared) and no data file
 * may change. Measured over many collections without data (the cost that
 * grows), created through the public API (the batch call, and for a smaller
 * count one call per collection), and over stores holding data of growing
 * size (the cost that must not grow).
 */
export interface CollectionsRotation {
  collections: number;
  /** Seconds to create them through `store.createCollections` (batches of `batch`), keys, catalog and files included. */
  createSeconds: number;
  batch: number;
  /** Seconds to create `oneByOne.collections` with one `createCollection` call each, for comparison. */
  oneByOne?: { collections: number; seconds: number };
  /** Every round's seconds, then their median. */
  seconds: number[];
  medianSeconds: number;
  rewrapped: number;
  /** Keyring file size after the rotation (one checkpoint). */
  keyringBytes: number;
}

export interface DataRotation {
  /** Bytes in the store's files other than the keyring. */
  dataBytes: number;
  records: number;
  seconds: number[];
  medianSeconds: number;
  /** Data files (everything but the keyring and the audit trail) whose SHA-256, mtime or size changed, or that appeared or vanished. */
  dataFiles: number;
  dataBytesRewritten: number;
  changedFiles: string[];
}

/** Creates `count` collections through the public API, then rotates the store's KEK `rounds` times; verifies every rotation. */
export async function rotateCollections(
  workDir: string,
  count: number,
  rounds: number,
  log: Log,
  oneByOne = 0,
): Promise<CollectionsRotation> {
  const root = join(workDir, `keyring-${count}`);
  await fs.rm(root, { recursive: true, force: true });
  const options = { dir: join(root, 'data'), keys: { provider: 'local' as const, keyDir: join(root, 'keys') }, maintainOnOpen: false };
  const batch = 1000;
  const seconds: number[] = [];
  let rewrapped = 0;
  const samples = new Map<string, Buffer>();
  try {
    let single: CollectionsRotation['oneByOne'];
    if (oneByOne > 0) {
      const s = await openStore({ ...options, dir: join(root, 'single'), create: true });
      try {
        const t = await timed(async () => {
          for (let i = 0; i < oneByOne; i++) await s.createCollection(`c${i}`, { dim: 8 });
        });
        single = { collections: oneByOne, seconds: round(t.seconds, 3) };
        log(`  ${oneByOne} collections created one call each: ${t.seconds.toFixed(2)} s`);
      } finally {
        await s.close();
      }
    }
    const store = await openStore({ ...options, create: true });
    let created: { seconds: number };
    try {
      const p = progress(log, `  creating ${count} collections in batches of ${batch}`, count);
      created = await timed(async () => {
        for (let at = 0; at < count; at += batch) {
          const n = Math.min(batch, count - at);
          await store.createCollections(Array.from({ length: n }, (_, i) => ({ name: `c${at + i}`, dim: 8 })));
          p.tick(at + n);
        }
      });
      p.end();
      log(`  ${count} collections created through createCollections: ${created.seconds.toFixed(2)} s`);
      if (store.listCollections().length !== count) throw new Error('the store does not list every collection created; refusing to report');
      for (const c of store.listCollections().slice(0, 20)) samples.set(c.id, await store.keys.withDek(c.id, 1, (k) => Buffer.from(k)));
    } finally {
      await store.close();
    }
    for (let r = 0; r < rounds; r++) {
      const s = await openStore(options);
      try {
        const t = await timed(() => s.rotateKek());
        seconds.push(t.seconds);
        rewrapped = t.value.rewrapped;
        log(
          `  rotation of ${count} collections, round ${r + 1}: ${t.seconds.toFixed(3)} s (${t.value.rewrapped} ` +
            `rewrapped, KEK v${String(t.value.fromVersion)} → v${String(t.value.toVersion)})`,
        );
        // The store's own keys (audit trail, store state) are rewrapped too.
        if (t.value.rewrapped < count) throw new Error(`rotation rewrapped ${t.value.rewrapped} of ${count} DEKs; refusing to report`);
      } finally {
        await s.close({ flush: false });
      }
      await verifyRotated(options, samples, count);
    }
    const keyringBytes = (await fs.stat(join(options.dir, KEYRING_FILE))).size;
    return {
      collections: count,
      createSeconds: round(created.seconds, 3),
      batch,
      ...(single ? { oneByOne: single } : {}),
      seconds: seconds.map((x) => round(x, 4)),
      medianSeconds: round(median(seconds), 4),
      rewrapped,
      keyringBytes,
    };
  } finally {
    for (const k of samples.values()) k.fill(0);
    await fs.rm(root, { recursive: true, force: true });
  }
}

/** After a rotation: every wrap is under the newest KEK version, and sampled DEKs unwrap (from a fresh open) to their original bytes. */
async function verifyRotated(options: Parameters<typeof openStore>[0], samples: Map<string, Buffer>, count: number): Promise<void> {
  const s = await openStore(options);
  try {
    const km = s.keys;
    const cols = Object.values(km.keyring.collections);
    const current = km.keyring.keks['default']?.currentVersion;
    if (cols.length !== count || !cols.every((c) => c.deks.every((d) => d.wraps.every((w) => w.kekVersion === current)))) {
      throw new Error('rotation left wraps under an old KEK version; refusing to report');
    }
    for (const [id, dek] of samples) {
      const ok = await km.withDek(id, 1, (k) => Buffer.from(k).equals(dek));
      if (!ok) throw new Error('a DEK unwraps to other bytes after rotation; refusing to report');
    }
  } finally {
    await s.close({ flush: false });
  }
}

/**
 * A store holding about `targetBytes` of data, then `rounds` KEK rotations
 * with every file other than the keyring fingerprinted (SHA-256, mtime,
 * size) before and after. Records are 16-dimensional vectors with about
 * 60 KB of incompressible metadata each, so that gigabytes of data cost disk
 * writes rather than hours of HNSW building; rotation does not look at the
 * data either way.
 */
export async function rotateWithData(workDir: string, targetBytes: number, rounds: number, log: Log): Promise<DataRotation> {
  const root = join(workDir, `data-${targetBytes}`);
  await fs.rm(root, { recursive: true, force: true });
  const options = { dir: join(root, 'data'), keys: { provider: 'local' as const, keyDir: join(root, 'keys') } };
  const perRecord = 60_000;
  const records = Math.max(1, Math.round(targetBytes / perRecord));
  try {
    const store = await openStore({ ...options, create: true });
    const p = progress(log, `  filling a store with ${(targetBytes / 1e6).toFixed(0)} MB`, records);
    try {
      const c = await store.createCollection('data', { dim: 16, efConstruction: 32 });
      for (let at = 0; at < records; at += 100) {
        const batch = [];
        for (let i = at; i < Math.min(records, at + 100); i++) {
          batch.push({
            id: `r${i}`,
            vector: Float32Array.from({ length: 16 }, () => Math.random()),
            metadata: { blob: randomBytes(45_000).toString('base64') },
          });
        }
        await c.upsert(batch);
        p.tick(at);
      }
      await c.flush();
    } finally {
      await store.close();
    }
    p.end();

    const seconds: number[] = [];
    let diff = { files: 0, bytes: 0, bytesRewritten: 0, changed: [] as string[] };
    for (let r = 0; r < rounds; r++) {
      const s = await openStore(options);
      try {
        // Opening starts a new WAL file: fingerprint after opening, so that only the rotation is between the two.
        // The keyring is what rotation rewrites, and the audit trail records it: neither holds data.
        const skip = (rel: string): boolean => rel === KEYRING_FILE || rel.startsWith(`.${KEYRING_FILE}.`) || rel === AUDIT_FILE_NAME;
        const before = await snapshotFiles(options.dir, skip);
        const t = await timed(() => s.rotateKek());
        const after = await snapshotFiles(options.dir, skip);
        seconds.push(t.seconds);
        const d = diffSnapshots(before, after);
        if (r === 0 || d.bytesRewritten > diff.bytesRewritten) diff = d;
        log(
          `  rotation over ${(d.bytes / 1e6).toFixed(0)} MB of data, round ${r + 1}: ` +
            `${t.seconds.toFixed(3)} s, ${d.bytesRewritten} data bytes rewritten`,
        );
        if (t.value.rewrapped < 1) throw new Error('rotation rewrapped nothing; refusing to report');
      } finally {
        await s.close({ flush: false });
      }
    }
    // The data still opens and reads under the rotated keyring.
    const check = await openStore(options);
    try {
      const c = check.collection('data');
      if (c.count !== records || !c.get('r0')) throw new Error('the store does not read back after rotation; refusing to report');
    } finally {
      await check.close({ flush: false });
    }
    return {
      dataBytes: diff.bytes,
      records,
      seconds: seconds.map((x) => round(x, 4)),
      medianSeconds: round(median(seconds), 4),
      dataFiles: diff.files,
      dataBytesRewritten: diff.bytesRewritten,
      changedFiles: diff.changed,
    };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}
