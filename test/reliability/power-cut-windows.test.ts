import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditFilePath, verifyAuditTrail } from '../../src/audit/index.js';
import { backupStore, verifyBackup } from '../../src/backup/index.js';
import { resolveStoreAudit } from '../../src/cli/audit-key.js';
import { openStore, type Store } from '../../src/store/index.js';
import { FaultFileLayer, type CrashMode } from '../../src/util/fault-file-layer.js';
import { useFileLayer } from '../../src/util/file-layer.js';

// One test per power-cut window: each runs operations through the fault
// layer, loses power right after they were acknowledged (everything not
// fsynced dropped, every directory change not made durable undone), and
// reopens with the real code. Each fails on a build without its fix.

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

interface Env {
  dir: string;
  keyDir: string;
  staging: string;
  open(create?: boolean): Promise<Store>;
}

function env(): Env {
  const root = mkdtempSync(join(tmpdir(), 'vs-window-'));
  roots.push(root);
  const e: Env = {
    dir: join(root, 'disk', 'data'),
    keyDir: join(root, 'disk', 'keys'),
    staging: join(root, 'staging'),
    open: (create = false) =>
      openStore({ dir: e.dir, create, keys: { provider: 'local', keyDir: e.keyDir }, stagingDir: e.staging, maintainOnOpen: false }),
  };
  return e;
}

/** Runs `fn` through the fault layer, then cuts the power (the store is never closed). */
async function thenPowerCut(e: Env, fn: () => Promise<void>, crash: CrashMode = 'drop'): Promise<void> {
  const disk = join(e.dir, '..');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(disk, { recursive: true });
  const layer = new FaultFileLayer({ root: disk, crash });
  const restore = useFileLayer(layer);
  try {
    await fn();
  } finally {
    restore();
  }
  await layer.settle();
  layer.materialize();
  // After the reboot the writer is gone: its LOCK names a pid that is not alive.
  const lock = join(e.dir, 'LOCK');
  try {
    const info = JSON.parse(readFileSync(lock, 'utf8')) as { pid: number };
    info.pid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
    writeFileSync(lock, JSON.stringify(info));
  } catch {
    // No lock left: nothing to make stale.
  }
}

describe('power-cut windows (each closed by a fsync)', () => {
  it('key directory: <keyDir>/store-<id> survives a power cut right after the store is created (its parent is fsynced)', async () => {
    const e = env();
    await thenPowerCut(e, async () => {
      await e.open(true);
    });
    const store = await e.open();
    await store.createCollection('a', { dim: 2 });
    await store.close();
  });

  it('collections/<id>: a collection the CATALOG names survives with its wal/ and seg/ (collections/ and <id>/ are fsynced)', async () => {
    const e = env();
    await thenPowerCut(e, async () => {
      const s = await e.open(true);
      const c = await s.createCollection('a', { dim: 2 });
      await c.upsert({ id: 'x', vector: [1, 2] });
    });
    const store = await e.open();
    expect(store.collection('a').get('x')?.vector).toEqual(new Float32Array([1, 2]));
    await store.collection('a').upsert({ id: 'y', vector: [3, 4] });
    await store.collection('a').flush();
    await store.close();
  });

  it(
    'audit trail: the entries of an acknowledged operation survive a power cut (fsynced before it ' + 'returns, not only at close)',
    async () => {
      const e = env();
      let head: { seq: number } | undefined;
      await thenPowerCut(e, async () => {
        const s = await e.open(true);
        await s.rotateKek();
        head = (s as unknown as { audit: { head(): { seq: number } } }).audit.head();
      });
      const audit = await resolveStoreAudit({ dir: e.dir, keyDir: e.keyDir });
      const v = await verifyAuditTrail({ file: auditFilePath(e.dir), macKey: audit.macKey, requireClosed: false });
      expect(v.ok).toBe(true);
      expect(v.ok && v.head?.seq).toBeGreaterThanOrEqual(head?.seq ?? Number.POSITIVE_INFINITY);
      await (await e.open()).close();
    },
  );

  it('audit trail: STATE names only an audit head that is durable (the trail is fsynced before STATE records it)', async () => {
    const e = env();
    await thenPowerCut(e, async () => {
      const s = await e.open(true);
      await s.createCollections([
        { name: 'a', dim: 2 },
        { name: 'b', dim: 2 },
      ]);
      await s.collection('a').upsert({ id: 'x', vector: [1, 2] });
      await s.collection('a').flush();
    });
    const audit = await resolveStoreAudit({ dir: e.dir, keyDir: e.keyDir });
    const v = await verifyAuditTrail({
      file: auditFilePath(e.dir),
      macKey: audit.macKey,
      requireClosed: false,
      ...(audit.recordedHead === undefined ? {} : { expectedHead: audit.recordedHead }),
    });
    expect(v).toMatchObject({ ok: true });
    await (await e.open()).close();
  });

  it('audit trail: a last line torn by a power cut is cut back on open instead of making the store unopenable', async () => {
    const e = env();
    await thenPowerCut(e, async () => {
      const s = await e.open(true);
      await s.rotateKek();
    });
    // What a torn append leaves: part of a line after the last newline.
    appendFileSync(auditFilePath(e.dir), '{"seq":99,"trail":"');
    const store = await e.open();
    await store.close();
    const audit = await resolveStoreAudit({ dir: e.dir, keyDir: e.keyDir });
    const v = await verifyAuditTrail({ file: auditFilePath(e.dir), macKey: audit.macKey });
    expect(v).toMatchObject({ ok: true, closed: true });
  });

  it('audit trail: a new trail file survives a power cut right after the store opened it (its directory is fsynced)', async () => {
    const e = env();
    await thenPowerCut(e, async () => {
      const s = await e.open(true);
      await s.close();
    });
    const store = await e.open();
    await store.close();
  });

  it(
    'backup: an acknowledged backup verifies after a power cut (snapshot files, ' + 'object directories and removed temps are durable)',
    async () => {
      const e = env();
      const to = join(e.dir, '..', 'backup');
      await thenPowerCut(e, async () => {
        const s = await e.open(true);
        const c = await s.createCollection('a', { dim: 2 });
        await c.upsert({ id: 'x', vector: [1, 2] });
        await c.flush();
        await backupStore(s, { to });
        await c.upsert({ id: 'y', vector: [3, 4] });
        await backupStore(s, { to });
      });
      const report = await verifyBackup(to, { withKeys: true, localKeyDir: e.keyDir });
      expect(report.snapshots).toEqual([1, 2]);
    },
  );
});
