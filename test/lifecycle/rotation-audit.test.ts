import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditFilePath, verifyAuditTrail } from '../../src/audit/index.js';
import { resolveStoreAuditKey } from '../../src/cli/audit-key.js';
import type { KeyAuditEvent } from '../../src/keys/key-manager.js';
import { storeDirs } from '../helpers/store.js';
import { auditEntries, openLifecycleStore } from './helpers.js';

/**
 * A KEK rotation records its rewraps as one audit entry (not one per DEK):
 * it names the KEK, both versions and the count, and its rewrapSetSha256 is
 * what the trail's own 'generate' entries say the rewrapped DEKs were.
 */
describe('the audit record of a KEK rotation', () => {
  it('is one rewrap entry whose count and set hash match the DEKs the trail says exist', async () => {
    const d = storeDirs('vs-life-');
    const events: KeyAuditEvent[] = [];
    const store = await openLifecycleStore(d, { audit: (e) => events.push(e) });
    await store.createCollections(Array.from({ length: 12 }, (_, i) => ({ name: `c${i}`, dim: 4 })));
    const dropped = store.listCollections()[3]!;
    await store.dropCollection(dropped.name);
    events.length = 0;
    const report = await store.rotateKek();
    await store.close();

    const entries = auditEntries(d.dir);
    const rewraps = entries.filter((e) => e.action === 'rewrap');
    expect(rewraps).toHaveLength(1);
    const r = rewraps[0]!;
    expect(r).toMatchObject({ outcome: 'ok', kek: 'default', kekVersion: report.toVersion });
    expect(r.details).toMatchObject({ rewrapped: report.rewrapped, alreadyCurrent: 0, fromVersion: report.fromVersion });
    // The application's callback got the same single event.
    expect(events.filter((e) => e.action === 'rewrap')).toHaveLength(1);

    // Derived from the trail alone: DEKs generated under the KEK before the rotation, minus destroyed collections.
    const at = entries.indexOf(r);
    const live = new Map<string, number>();
    for (const e of entries.slice(0, at)) {
      if (e.action === 'generate' && e.kek === 'default' && e.collectionId !== undefined) live.set(`${e.collectionId}/${e.dekVersion}`, 1);
      if (e.action === 'destroy' && e.collectionId !== undefined)
        for (const k of [...live.keys()]) if (k.startsWith(`${e.collectionId}/`)) live.delete(k);
    }
    expect(live.size).toBe(report.rewrapped);
    const hash = createHash('sha256');
    for (const line of [...live.keys()].map((k) => `${k}\n`).sort()) hash.update(line);
    expect(r.details?.['rewrapSetSha256']).toBe(hash.digest('hex'));
    expect(live.has(`${dropped.id}/1`)).toBe(false);

    const macKey = await resolveStoreAuditKey({ dir: d.dir, keyDir: d.keyDir });
    const verified = await verifyAuditTrail({ file: auditFilePath(d.dir), macKey });
    macKey.fill(0);
    expect(verified).toMatchObject({ ok: true, closed: true });
  });
});
