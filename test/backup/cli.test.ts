import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, runCliSync, type CliResult } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';

const cli = (args: string[], env: Record<string, string>): CliResult => runCliSync(args, { env });

function json<T>(args: string[], env: Record<string, string>): T {
  const r = cli([...args, '--json'], env);
  expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe('vectorseal kek / backup / restore (built binary)', () => {
  beforeAll(async () => {
    await fs.access(CLI_BIN); // run `npm run build` first
  });

  it('a second KEK keeps the store usable when the first is gone; backup, verify, tamper, restore with a new KEK', async () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir, VECTORSEAL_STAGING_DIR: d.stagingDir };
    json(['init'], env);
    json(['collection', 'create', 'docs', '--dim', '4'], env);
    const jsonl = join(d.root, 'docs.jsonl');
    await fs.writeFile(
      jsonl,
      `${Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: `doc-${i}`, vector: [i, 1, 2, 3], metadata: { i } })).join('\n')}\n`,
    );
    json(['import', 'docs', jsonl], env);

    const escrowDir = join(d.root, 'escrow');
    expect(json<{ provider: string }>(['kek', 'add', 'escrow', '--provider', 'local', '--kek-key-dir', escrowDir], env).provider).toBe(
      'local',
    );
    expect(json<{ wrapped: number }>(['kek', 'attach', 'escrow'], env).wrapped).toBeGreaterThanOrEqual(1);
    const list = json<{ name: string; reachable: boolean; attachedTo: string[] }[]>(['kek', 'list'], env);
    expect(list.map((k) => [k.name, k.reachable, k.attachedTo])).toEqual([
      ['default', true, ['store']],
      ['escrow', true, ['store']],
    ]);

    // The store's own master key is moved away: the store opens through the escrow KEK, and info says which KEK is unusable.
    await fs.rename(d.keyDir, `${d.keyDir}.away`);
    const info = json<{ unusableKeks: string[]; collections: { count: number }[] }>(['info'], env);
    expect(info.unusableKeks).toEqual(['default']);
    expect(info.collections[0]!.count).toBe(30);
    expect(cli(['info'], env).stdout).toMatch(/KEK default: .* -- (UNREACHABLE|DESTROYED)/);
    await fs.rename(`${d.keyDir}.away`, d.keyDir);
    expect(json<string[]>(['kek', 'detach', 'escrow'], env)).toMatchObject({ detached: 'escrow' });

    const to = join(d.root, 'backup');
    const b1 = json<{ snapshot: number; copied: number }>(['backup', '--to', to], env);
    expect(b1.snapshot).toBe(1);
    const b2 = json<{ snapshot: number; reused: number }>(['backup', '--to', to, '--collections', 'docs'], env);
    expect(b2.reused).toBeGreaterThan(0);
    expect(json<{ ok: boolean; mac: string }>(['backup', 'verify', '--from', to], env)).toMatchObject({ ok: true, mac: 'not checked' });
    expect(json<{ mac: string }>(['backup', 'verify', '--from', to, '--with-keys'], env).mac).toBe('verified');

    // Restore under a brand-new local KEK in another key directory.
    const newKeys = join(d.root, 'dr-keys');
    const restored = join(d.root, 'restored');
    const r = json<{ collections: { name: string; count: number }[]; rewrap: { detached: string[] } }>(
      ['restore', '--from', to, '--dir', restored, '--kek', 'local', '--kek-key-dir', newKeys, '--kek-name', 'dr'],
      env,
    );
    expect(r.collections).toEqual([{ name: 'docs', id: expect.any(String), count: 30 }]);
    expect(r.rewrap.detached).toEqual(['default']);
    // The original master key is not needed by the restored store.
    await fs.rename(d.keyDir, `${d.keyDir}.away`);
    const hits = cli(['search', 'docs', '--vector', '[3,1,2,3]', '--k', '1', '--dir', restored], env);
    expect(hits.status, hits.stderr).toBe(0);
    expect(hits.stdout).toContain('doc-3');
    await fs.rename(`${d.keyDir}.away`, d.keyDir);

    // Tamper: an extra file → exit 2, typed, and restore writes nothing.
    await fs.writeFile(join(to, 'objects', 'planted'), 'x');
    const v = cli(['backup', 'verify', '--from', to], env);
    expect(v.status).toBe(2);
    expect(v.stderr).toMatch(/^error VS_CORRUPT_DATA: .*planted/);
    const bad = cli(['restore', '--from', to, '--dir', join(d.root, 'nope')], env);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^error VS_CORRUPT_DATA: /);
    await expect(fs.access(join(d.root, 'nope'))).rejects.toThrow();
  });
});
