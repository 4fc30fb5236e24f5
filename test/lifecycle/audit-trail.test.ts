import { readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { auditFilePath, verifyAuditTrail } from '../../src/audit/index.js';
import { resolveStoreAuditKey } from '../../src/cli/audit-key.js';
import { KeyDisabledError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';
import { auditEntries, openLifecycleStore, vectorOf } from './helpers.js';

describe('the store audit trail', () => {
  it(
    'records every key and store event of a run with its principal, verifies, ' + 'and `audit verify` exits 2 once an entry changes',
    async () => {
      const d = storeDirs('vs-life-');
      const extra = new PassThrough();
      let mirrored = '';
      extra.on('data', (b: Buffer) => (mirrored += b.toString()));
      const store = await openLifecycleStore(d, { principal: 'svc:indexer', auditDestination: extra });
      await store.createTenant('acme', { kek: { provider: 'local' } });
      const a = await store.createCollection('docs', { dim: 8, tenant: 'acme' });
      await a.upsert([{ id: 'doc-secret-id', vector: vectorOf(3), metadata: { title: 'quarterly-confidential' } }]);
      await a.flush();
      await store.disableTenant('acme');
      expect(() => a.search(vectorOf(3), 1)).toThrow(KeyDisabledError);
      await store.enableTenant('acme');
      await store.rekey('docs');
      await store.reencrypt('docs');
      await store.rotateKek();
      await store.maintain();
      await store.close();

      const entries = auditEntries(d.dir);
      const actions = new Set(entries.map((e) => e.action));
      for (const a of [
        'trail-open',
        'open',
        'generate',
        'add-kek',
        'create-tenant',
        'disable',
        'denied',
        'enable',
        'unwrap',
        'rekey',
        'retire-dek',
        'rewrap',
        'rotate-kek',
        'maintain',
        'checkpoint',
      ]) {
        expect(actions, a).toContain(a);
      }
      expect(
        entries.filter((e) => e.action !== 'trail-open' && e.action !== 'checkpoint').every((e) => e.principal === 'svc:indexer'),
      ).toBe(true);
      // No key material, vector data, ids or metadata in any entry.
      const text = readFileSync(auditFilePath(d.dir), 'utf8');
      for (const secret of ['doc-secret-id', 'quarterly-confidential', 'docs"']) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/"(key|dek|blob|plaintext|vector|metadata)"/);
      // The other destination got the same lines.
      expect(mirrored).toBe(text);

      const macKey = await resolveStoreAuditKey({ dir: d.dir, keyDir: d.keyDir });
      const result = await verifyAuditTrail({ file: auditFilePath(d.dir), macKey });
      macKey.fill(0);
      expect(result).toMatchObject({ ok: true, closed: true, entries: entries.length });

      const ok = await runCli(['audit', 'verify', '--key-dir', d.keyDir, '--dir', d.dir]);
      expect(ok.status).toBe(0);
      expect(ok.stdout).toMatch(/intact/);

      // Change one entry's outcome: the chain names it.
      const lines = text.split('\n');
      const i = lines.findIndex((l) => l.includes('"action":"denied"'));
      lines[i] = lines[i]!.replace('"outcome":"denied"', '"outcome":"ok"');
      writeFileSync(auditFilePath(d.dir), lines.join('\n'));
      const bad = await runCli(['audit', 'verify', '--key-dir', d.keyDir, '--dir', d.dir, '--json']);
      expect(bad.status).toBe(2);
      expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problem: 'modified', firstBadEntry: i });

      // Delete an entry instead.
      writeFileSync(
        auditFilePath(d.dir),
        text
          .split('\n')
          .filter((_, k) => k !== i)
          .join('\n'),
      );
      const gone = await runCli(['audit', 'verify', '--key-dir', d.keyDir, '--dir', d.dir, '--json']);
      expect(gone.status).toBe(2);
      expect(JSON.parse(gone.stdout)).toMatchObject({ ok: false, firstBadEntry: i });
    },
  );

  it('continues one chain across store sessions', async () => {
    const d = storeDirs('vs-life-');
    for (let k = 0; k < 3; k++) {
      const s = await openLifecycleStore(d);
      if (k === 0) await s.createCollection('c', { dim: 4 });
      await s.collection('c').upsert({ id: `x${k}`, vector: [k, 1, 2, 3] });
      await s.close();
    }
    const macKey = await resolveStoreAuditKey({ dir: d.dir, keyDir: d.keyDir });
    const result = await verifyAuditTrail({ file: auditFilePath(d.dir), macKey });
    expect(result.ok).toBe(true);
    expect(auditEntries(d.dir).filter((e) => e.action === 'open').length).toBe(3);
  });
});
