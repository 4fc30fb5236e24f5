import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { CLI_BIN, runCliSync, type CliResult } from '../helpers/cli.js';
import { storeDirs, type TestStoreDirs } from '../helpers/store.js';

const cli = (args: string[], env: Record<string, string>): CliResult => runCliSync(args, { env });

function line(i: number, dim = 4, id = `r-${i}`): string {
  return JSON.stringify({
    id,
    vector: Array.from({ length: dim }, (_, j) => ((i * 7 + j * 3) % 11) + 1),
    metadata: { i, tag: i % 3 === 0 ? 'a' : 'b', z: 0 },
  }).replace('"z":0', '"z":-0');
}

async function setUp(d: TestStoreDirs): Promise<Record<string, string>> {
  const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
  expect(cli(['init'], env).status).toBe(0);
  expect(cli(['collection', 'create', 'docs', '--dim', '4'], env).status).toBe(0);
  return env;
}

/** Every record of the collection, as comparable plain data (vector bytes, metadata with -0 made visible). */
async function dump(dir: string, keyDir: string): Promise<Map<string, string>> {
  const store: Store = await openStore({ dir, keys: { provider: 'local', keyDir } });
  try {
    const c = store.collection('docs');
    const out = new Map<string, string>();
    for (const id of c.ids().sort()) {
      const r = c.get(id)!;
      out.set(
        id,
        JSON.stringify([
          Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength).toString('hex'),
          r.metadata,
          Object.is((r.metadata as { z?: number })?.z, -0),
        ]),
      );
    }
    return out;
  } finally {
    await store.close();
  }
}

describe('vectorseal import: atomic, resumable, named errors', () => {
  beforeAll(async () => {
    await fs.access(CLI_BIN);
  });

  it('a bad record at line 1001 commits nothing and names the file and line', async () => {
    const d = storeDirs();
    const env = await setUp(d);
    const first = join(d.root, 'first.jsonl');
    await fs.writeFile(first, `${Array.from({ length: 20 }, (_, i) => line(i)).join('\n')}\n`);
    expect(cli(['import', 'docs', first], env).status).toBe(0);
    const before = await dump(d.dir, d.keyDir);

    const data = join(d.root, 'data.jsonl');
    const lines = Array.from({ length: 1500 }, (_, i) => line(i + 100));
    lines[1000] = line(1100, 2);
    await fs.writeFile(data, `${lines.join('\n')}\n`);
    const r = cli(['import', 'docs', data, '--batch', '100'], env);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('VS_INVALID_ARGUMENT');
    expect(r.stderr).toContain('data.jsonl line 1001: "vector" expected 4 dimensions, got 2');
    expect(await dump(d.dir, d.keyDir)).toEqual(before);

    // Malformed JSON and malformed UTF-8 are named by line too, and commit nothing.
    lines[1000] = '{"id": "x", "vector": [1,2';
    await fs.writeFile(data, `${lines.join('\n')}\n`);
    expect(cli(['import', 'docs', data], env).stderr).toContain('data.jsonl line 1001: not valid JSON');
    await fs.writeFile(
      data,
      Buffer.concat([Buffer.from(`${line(1)}\n${line(2)}\n{"id": "`), Buffer.from([0xff, 0xfe]), Buffer.from('", "vector": [1,2,3,4]}\n')]),
    );
    expect(cli(['import', 'docs', data], env).stderr).toContain('data.jsonl line 3: not valid UTF-8');
    expect(await dump(d.dir, d.keyDir)).toEqual(before);
  });

  it('an import killed between batches is continued by --resume, with the result of one clean import', async () => {
    const d = storeDirs();
    const env = await setUp(d);
    const lines = Array.from({ length: 1000 }, (_, i) => line(i));
    // Repeated ids: the last one wins, within a batch and across batches.
    lines.push(line(5000, 4, 'r-3'), line(5001, 4, 'r-999'));
    lines.splice(10, 0, line(6000, 4, 'r-12'));
    const data = join(d.root, 'data.jsonl');
    await fs.writeFile(data, `${lines.join('\n')}\n`);

    const killed = cli(['import', 'docs', data, '--batch', '100'], { ...env, VECTORSEAL_CRASH_AT: 'import:batch-committed#4' });
    expect(killed.signal).toBe('SIGKILL');
    const partial = await dump(d.dir, d.keyDir);
    expect(partial.size).toBeGreaterThanOrEqual(390);
    expect(partial.size).toBeLessThan(1000);

    const resumed = cli(['import', 'docs', data, '--batch', '100', '--resume', '--json'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
    const report = JSON.parse(resumed.stdout) as { records: number; ids: number; duplicates: number; skipped: number; written: number };
    expect(report).toMatchObject({ records: 1003, ids: 1000, duplicates: 3 });
    expect(report.skipped).toBeGreaterThanOrEqual(390);
    expect(report.skipped + report.written).toBe(1000);

    const clean = storeDirs();
    const cleanEnv = await setUp(clean);
    expect(cli(['import', 'docs', data, '--batch', '100'], cleanEnv).status).toBe(0);
    const want = await dump(clean.dir, clean.keyDir);
    const got = await dump(d.dir, d.keyDir);
    expect(got.size).toBe(1000);
    expect(got).toEqual(want);
    expect(JSON.parse(got.get('r-3')!)[1].i).toBe(5000);
    expect(JSON.parse(got.get('r-12')!)[1].i).toBe(12);
    expect(JSON.parse(got.get('r-999')!)[1].i).toBe(5001);
    expect(JSON.parse(got.get('r-7')!)[2]).toBe(true);
  });

  it('a missing input file is a typed error naming it', async () => {
    const d = storeDirs();
    const env = await setUp(d);
    const r = cli(['import', 'docs', join(d.root, 'nope.jsonl')], env);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^error VS_NOT_FOUND: input file .*nope\.jsonl does not exist/);
  });
});
