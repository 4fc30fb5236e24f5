import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditFilePath, verifyAuditTrail } from '../../src/audit/index.js';
import { resolveStoreAudit } from '../../src/cli/audit-key.js';
import { AuditWriteError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { FaultFileLayer } from '../../src/util/fault-file-layer.js';
import { useFileLayer } from '../../src/util/file-layer.js';

// A failing disk: the audit trail's fsync returns EIO (injected by the fault
// layer, as no disk here can be made to fail). An operation whose audit
// entries could not be made durable must not be acknowledged as if they were.

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe('audit trail: a failed fsync is reported, never swallowed', () => {
  it(
    'the operation fails with AuditWriteError, later ones too (no later fsync can vouch for the lost lines), ' +
      'and after a power cut the store opens with a trail that verifies',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'vs-audit-fsync-'));
      roots.push(root);
      const disk = join(root, 'disk');
      mkdirSync(disk);
      const dir = join(disk, 'data');
      const keyDir = join(disk, 'keys');
      const options = { dir, keys: { provider: 'local' as const, keyDir }, stagingDir: join(root, 'staging'), maintainOnOpen: false };
      let failing = false;
      const layer = new FaultFileLayer({ root: disk, crash: 'drop', failFsync: (p) => failing && p === 'data/audit.log' });
      const restore = useFileLayer(layer);
      try {
        const store = await openStore({ ...options, create: true });
        const c = await store.createCollection('a', { dim: 2 });
        await c.upsert({ id: 'x', vector: [1, 2] });
        failing = true;
        const err = await store.rotateKek().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AuditWriteError);
        expect(err).toMatchObject({ code: 'VS_AUDIT_WRITE' });
        // The disk answers again: the trail still refuses, and so does every operation that waits for it.
        failing = false;
        await expect(store.createTenant('t')).rejects.toMatchObject({ code: 'VS_AUDIT_WRITE' });
        // Writes that do not wait for the trail go on: the record is in the WAL.
        await c.upsert({ id: 'y', vector: [3, 4] });
        // Nor can a flush (the store state must name a durable audit head), so the close fails too; it still
        // releases everything, and the store is left for the next open to recover.
        await expect(store.close()).rejects.toMatchObject({ code: 'VS_AUDIT_WRITE' });
      } finally {
        restore();
      }
      await layer.settle();
      layer.materialize();
      const lock = join(dir, 'LOCK');
      try {
        const info = JSON.parse(readFileSync(lock, 'utf8')) as { pid: number };
        info.pid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
        writeFileSync(lock, JSON.stringify(info));
      } catch {
        // The close released it.
      }
      // Reopened with the real file layer: every acknowledged write is there and the trail verifies.
      const store = await openStore(options);
      expect(store.collection('a').get('x')?.vector).toEqual(new Float32Array([1, 2]));
      expect(store.collection('a').get('y')?.vector).toEqual(new Float32Array([3, 4]));
      await store.rotateKek();
      await store.close();
      const audit = await resolveStoreAudit({ dir, keyDir });
      try {
        const expected = audit.recordedHead ? { expectedHead: audit.recordedHead } : {};
        const v = await verifyAuditTrail({ file: auditFilePath(dir), macKey: audit.macKey, ...expected });
        expect(v).toMatchObject({ ok: true, closed: true });
      } finally {
        audit.macKey.fill(0);
      }
    },
  );
});
