import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';
import { vectorOf } from './helpers.js';

describe('vectorseal tenant, collection disable, policy, rekey and maintain', () => {
  it('drives the key lifecycle from a shell', async () => {
    const d = storeDirs('vs-life-');
    const common = ['--dir', d.dir, '--key-dir', d.keyDir, '--staging-dir', d.stagingDir];
    const run = async (...args: string[]) => runCli([...args, ...common]);
    expect((await run('init')).status).toBe(0);
    const created = await run('tenant', 'create', 'acme', '--own-kek', 'local', '--json');
    expect(created.status).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ tenant: 'acme', keks: ['tenant-acme'], state: 'enabled' });
    expect((await run('collection', 'create', 'docs', '--dim', '8', '--tenant', 'acme')).status).toBe(0);
    const data = join(d.root, 'data.jsonl');
    writeFileSync(data, Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: `r-${i}`, vector: vectorOf(i) })).join('\n'));
    expect((await run('import', 'docs', data)).status).toBe(0);
    const query = JSON.stringify(vectorOf(4));

    expect((await run('tenant', 'disable', 'acme')).stdout).toMatch(/acme: disabled/);
    const refused = await run('search', 'docs', '--vector', query, '--k', '1');
    expect(refused.status).toBe(4); // a typed vectorseal error (exit-codes.ts)
    expect(refused.stderr).toMatch(/^error VS_KEY_DISABLED: tenant "acme" is disabled/);
    expect((await run('tenant', 'enable', 'acme')).status).toBe(0);
    expect((await run('search', 'docs', '--vector', query, '--k', '1')).stdout).toMatch(/1\. r-4/);

    expect((await run('collection', 'disable', 'docs')).status).toBe(0);
    expect((await run('search', 'docs', '--vector', query)).stderr).toMatch(/VS_KEY_DISABLED/);
    expect((await run('collection', 'enable', 'docs')).status).toBe(0);

    const early = await run('tenant', 'delete', 'acme', '--after', '3');
    expect(early.status).not.toBe(0);
    const scheduled = await run('tenant', 'delete', 'acme', '--json');
    expect(JSON.parse(scheduled.stdout)).toMatchObject({ state: 'pending-deletion' });
    expect(Date.parse(JSON.parse(scheduled.stdout).deleteAfter as string)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect((await run('search', 'docs', '--vector', query)).stderr).toMatch(/VS_KEY_PENDING_DELETION/);
    expect((await run('tenant', 'cancel', 'acme')).stdout).toMatch(/acme: enabled/);

    const policy = await run('policy', 'set', '--tenant', 'acme', '--kek-rotation-days', '30', '--dek-max-pages', '1000', '--json');
    expect(JSON.parse(policy.stdout)).toEqual({ tenant: 'acme', policy: { kekRotationDays: 30, dekMaxPages: 1000 } });

    const rekey = await run('rekey', 'docs', '--json');
    expect(rekey.status).toBe(0);
    expect(JSON.parse(rekey.stdout)).toMatchObject({ collection: 'docs', dekVersion: 2, destroyedVersions: [1] });
    const maintain = await run('maintain', '--json');
    expect(JSON.parse(maintain.stdout)).toMatchObject({ kekRotations: [], rekeys: [], shredded: { tenants: [] } });
    const last = await run('search', 'docs', '--vector', query, '--k', '1');
    expect(last.stdout, `exit ${last.status}: ${last.stderr}`).toMatch(/1\. r-4/);
    expect((await runCli(['audit', 'verify', '--dir', d.dir])).status).toBe(0);
  });
});
