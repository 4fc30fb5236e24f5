import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, runCliSync, type CliResult } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';

const cli = (args: string[], env: Record<string, string> = {}): CliResult => runCliSync(args, { env });

function json<T>(args: string[], env: Record<string, string> = {}): T {
  const r = cli([...args, '--json'], env);
  expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe('vectorseal CLI (built binary)', () => {
  beforeAll(async () => {
    // Spawns dist/cli/main.js: run `npm run build` first.
    await fs.access(CLI_BIN);
  });

  it('init, collection create/list, import (JSONL and fvecs), search, info, rotate-kek, drop', async () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    const init = json<{ storeId: string; keyDir: string }>(['init'], env);
    expect(init.keyDir).toBe(d.keyDir);
    expect(cli(['init'], env).stderr).toMatch(/^error VS_ALREADY_EXISTS: /);

    json(['collection', 'create', 'docs', '--dim', '4', '--space', 'cosine'], env);
    json(['collection', 'create', 'raw', '--dim', '3', '--dir', d.dir], { VECTORSEAL_KEY_DIR: d.keyDir });
    expect(json<{ name: string }[]>(['collection', 'list'], env).map((c) => c.name)).toEqual(['docs', 'raw']);

    const jsonl = join(d.root, 'docs.jsonl');
    const lines = Array.from({ length: 50 }, (_, i) =>
      JSON.stringify({ id: `doc-${i}`, vector: [i + 1, 1, (i % 5) + 1, 2], metadata: { lang: i % 2 ? 'en' : 'fr', i } }),
    );
    await fs.writeFile(jsonl, `${lines.join('\n')}\n`);
    expect(json<{ imported: number }>(['import', 'docs', jsonl], env).imported).toBe(50);

    const fvecs = join(d.root, 'pts.fvecs');
    const buf = Buffer.alloc(3 * 16);
    for (let i = 0; i < 3; i++) {
      buf.writeInt32LE(3, i * 16);
      for (let j = 0; j < 3; j++) buf.writeFloatLE(i * 10 + j, i * 16 + 4 + j * 4);
    }
    await fs.writeFile(fvecs, buf);
    expect(json<{ imported: number }>(['import', 'raw', fvecs], env).imported).toBe(3);
    expect(json<{ id: string }[]>(['search', 'raw', '--vector', '[10,11,12]', '--k', '1'], env)[0]!.id).toBe('pts-1');

    const hits = json<{ id: string; score: number; metadata: { lang: string } }[]>(
      ['search', 'docs', '--vector', '[8,1,3,2]', '--k', '3', '--filter', '{"lang":"en"}'],
      env,
    );
    expect(hits).toHaveLength(3);
    expect(hits[0]!.id).toBe('doc-7');
    expect(hits.every((h) => h.metadata.lang === 'en')).toBe(true);

    const info = json<{
      storeId: string;
      keks: { currentVersion: string }[];
      collections: { name: string; count: number; segments: number }[];
    }>(['info'], env);
    expect(info.storeId).toBe(init.storeId);
    expect(info.keks[0]!.currentVersion).toBe('1');
    expect(info.collections.find((c) => c.name === 'docs')).toMatchObject({ count: 50, segments: 1 });
    const infoText = cli(['info'], env).stdout;
    expect(infoText).toContain('docs');

    const rot = json<{ rewrapped: number; fromVersion: string; toVersion: string; dataFiles: { byteIdentical: boolean; checked: number } }>(
      ['rotate-kek'],
      env,
    );
    // Two collection DEKs and the store's audit-trail and state keys.
    expect(rot).toMatchObject({ rewrapped: 4, fromVersion: '1', toVersion: '2' });
    expect(rot.dataFiles.byteIdentical).toBe(true);
    expect(rot.dataFiles.checked).toBeGreaterThan(5);
    expect(json<{ id: string }[]>(['search', 'docs', '--vector', '[8,1,3,2]', '--k', '3', '--filter', '{"lang":"en"}'], env)).toEqual(hits);

    json(['collection', 'drop', 'raw', '--yes'], env);
    expect(json<{ name: string }[]>(['collection', 'list'], env).map((c) => c.name)).toEqual(['docs']);
  });

  it('read-only commands leave the same set of files behind (no empty WAL file per command)', async () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    json(['init'], env);
    json(['collection', 'create', 'docs', '--dim', '3'], env);
    const files = async (): Promise<string[]> => {
      const out: string[] = [];
      const walk = async (dir: string, rel: string): Promise<void> => {
        for (const e of await fs.readdir(dir, { withFileTypes: true })) {
          if (e.isDirectory()) await walk(join(dir, e.name), `${rel}${e.name}/`);
          else out.push(`${rel}${e.name}`);
        }
      };
      await walk(d.dir, '');
      return out.sort();
    };
    const before = await files();
    for (let i = 0; i < 5; i++) {
      json(['collection', 'list'], env);
      json(['search', 'docs', '--vector', '[1,2,3]', '--k', '1'], env);
    }
    expect(await files()).toEqual(before);
    expect(before.filter((f) => f.endsWith('.wal'))).toEqual([]);
  });

  it('prints typed errors as "error <code>: <message>" without a stack trace and exits non-zero', async () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    const missing = cli(['info'], env);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/^error VS_NOT_FOUND: /);
    json(['init'], env);
    json(['collection', 'create', 'c', '--dim', '2'], env);
    for (const [args, code] of [
      [['search', 'nope', '--vector', '[1,2]'], 'VS_NOT_FOUND'],
      [['search', 'c', '--vector', '[1,2,3]'], 'VS_INVALID_ARGUMENT'],
      [['search', 'c', '--vector', 'not json'], 'VS_INVALID_ARGUMENT'],
      [['collection', 'create', 'c', '--dim', '2'], 'VS_ALREADY_EXISTS'],
    ] as [string[], string][]) {
      const r = cli(args, env);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`^error ${code}: `));
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const noDir = cli(['info'], { VECTORSEAL_DIR: '' });
    expect(noDir.stderr).toMatch(/^error VS_INVALID_ARGUMENT: no store directory/);
  });

  it('demo: imports the fixture, rotates the KEK, data files byte-identical, results unchanged', async () => {
    const d = storeDirs();
    const r = json<{
      ok: boolean;
      plaintextOccurrences: number;
      dataFiles: { identical: boolean };
      sameResultsAfterRotation: boolean;
      records: number;
    }>(['demo', '--dir', d.root]);
    expect(r).toMatchObject({ ok: true, plaintextOccurrences: 0, sameResultsAfterRotation: true, records: 400 });
    expect(r.dataFiles.identical).toBe(true);
  });
});
