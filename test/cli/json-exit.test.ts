import { existsSync, promises as fs, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { CLI_BIN, runCliSync, type CliResult as Run } from '../helpers/cli.js';
import { storeDirs } from '../helpers/store.js';

const cli = (args: string[], env: Record<string, string>, input?: string): Run => runCliSync(args, { env, input });

/** Every stdout line parses as JSON on its own; returns the parsed lines. */
function jsonLines(r: Run, what: string): unknown[] {
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  expect(lines.length, `${what}: some JSON on stdout`).toBeGreaterThan(0);
  return lines.map((l) => {
    try {
      return JSON.parse(l) as unknown;
    } catch {
      throw new Error(`${what}: stdout line is not JSON: ${l.slice(0, 200)}`);
    }
  });
}

describe('vectorseal CLI: --json, exit codes, inputs, confirmation', () => {
  beforeAll(async () => {
    await fs.access(CLI_BIN);
  });

  it(
    'with --json every stdout line is JSON, errors included, and exit codes tell usage, ' + 'vectorseal errors and tampering apart',
    async () => {
      const d = storeDirs();
      const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
      const data = join(d.root, 'docs.jsonl');
      await fs.writeFile(
        data,
        `${Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: `d${i}`, vector: [i + 1, 1, 2, 3], metadata: { i } })).join('\n')}\n`,
      );
      const ok: string[][] = [
        ['init'],
        ['collection', 'create', 'docs', '--dim', '4'],
        ['collection', 'list'],
        ['import', 'docs', data],
        ['search', 'docs', '--vector', '[1,1,2,3]', '--k', '3'],
        ['info'],
        ['rotate-kek'],
        ['audit', 'verify', '--dir', d.dir, '--allow-open'],
        ['audit', 'show', '--tail', '3', '--dir', d.dir],
      ];
      for (const args of ok) {
        const r = cli([...args, '--json'], env);
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(EXIT.OK);
        jsonLines(r, args.join(' '));
      }
      const failing: [string[], number, string][] = [
        [['serch', 'docs'], EXIT.USAGE, 'VS_USAGE'],
        [['search', 'docs', '--bogus'], EXIT.USAGE, 'VS_USAGE'],
        [['search', 'docs'], EXIT.USAGE, 'VS_USAGE'],
        [['search', 'nope', '--vector', '[1,2,3,4]'], EXIT.ERROR, 'VS_NOT_FOUND'],
        [['search', 'docs', '--vector', '[1,2]'], EXIT.ERROR, 'VS_INVALID_ARGUMENT'],
        [['search', 'docs', '--vector', '@/nonexistent/q.json'], EXIT.ERROR, 'VS_NOT_FOUND'],
        [['import', 'docs', join(d.root, 'missing.jsonl')], EXIT.ERROR, 'VS_NOT_FOUND'],
        [['collection', 'drop', 'docs'], EXIT.ERROR, 'VS_INVALID_ARGUMENT'],
        [['init'], EXIT.ERROR, 'VS_ALREADY_EXISTS'],
      ];
      for (const [args, status, code] of failing) {
        const r = cli([...args, '--json'], env);
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(status);
        const [line, ...rest] = jsonLines(r, args.join(' ')) as { error: { code: string; message: string } }[];
        expect(rest).toEqual([]);
        expect(line!.error.code, args.join(' ')).toBe(code);
        expect(typeof line!.error.message).toBe('string');
        expect(line!.error.message).not.toMatch(/\n\s+at /);
      }
      // Without --json: the same codes, the message on stderr, stdout empty.
      const plain = cli(['search', 'nope', '--vector', '[1,2,3,4]'], env);
      expect(plain.status).toBe(EXIT.ERROR);
      expect(plain.stdout).toBe('');
      expect(plain.stderr).toMatch(/^error VS_NOT_FOUND: /);

      // Tampered data has its own exit code.
      const colDir = join(d.dir, 'collections', readdirSync(join(d.dir, 'collections'))[0]!);
      const manifest = join(colDir, 'MANIFEST');
      const bytes = await fs.readFile(manifest);
      bytes[bytes.length - 5]! ^= 1;
      await fs.writeFile(manifest, bytes);
      const tampered = cli(['info', '--json'], env);
      expect(tampered.status).toBe(EXIT.TAMPERED);
      expect((jsonLines(tampered, 'tampered info')[0] as { error: { code: string } }).error.code).toMatch(/^VS_(CORRUPT_DATA|ROLLBACK)$/);
    },
  );

  it('a typo suggests the command without printing the whole help', () => {
    const r = cli(['serch'], {});
    expect(r.status).toBe(EXIT.USAGE);
    expect(r.stderr).toContain("unknown command 'serch'");
    expect(r.stderr).toContain('Did you mean search?');
    expect(r.stderr).not.toContain('Commands:');
    expect(r.stderr.split('\n').length).toBeLessThan(6);
  });

  it('--vector @file.json and --vector - (stdin) give the same hits as the inline vector', async () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    expect(cli(['init'], env).status).toBe(0);
    expect(cli(['collection', 'create', 'c', '--dim', '3'], env).status).toBe(0);
    const data = join(d.root, 'c.jsonl');
    await fs.writeFile(
      data,
      `${Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: `p${i}`, vector: [i, i * 2, 1] })).join('\n')}\n`,
    );
    expect(cli(['import', 'c', data], env).status).toBe(0);
    const q = join(d.root, 'q.json');
    await fs.writeFile(q, '[4, 8, 1]\n');
    const inline = cli(['search', 'c', '--vector', '[4,8,1]', '--k', '2', '--json'], env);
    const fromFile = cli(['search', 'c', '--vector', `@${q}`, '--k', '2', '--json'], env);
    const fromStdin = cli(['search', 'c', '--vector', '-', '--k', '2', '--json'], env, '[4, 8, 1]');
    expect(inline.status, inline.stderr).toBe(0);
    expect(fromFile.stdout).toBe(inline.stdout);
    expect(fromStdin.stdout).toBe(inline.stdout);
    expect((JSON.parse(inline.stdout) as { id: string }[])[0]!.id).toBe('p4');
    const bad = cli(['search', 'c', '--vector', '-', '--json'], env, 'not json');
    expect(bad.status).toBe(EXIT.ERROR);
  });

  it('collection drop asks first: without a terminal it needs --yes, and nothing is dropped without it', () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    expect(cli(['init'], env).status).toBe(0);
    expect(cli(['collection', 'create', 'c', '--dim', '3'], env).status).toBe(0);
    const refused = cli(['collection', 'drop', 'c'], env, 'c\n');
    expect(refused.status).toBe(EXIT.ERROR);
    expect(refused.stderr).toMatch(/^error VS_INVALID_ARGUMENT: .*--yes/);
    expect(JSON.parse(cli(['collection', 'list', '--json'], env).stdout)).toHaveLength(1);
    expect(cli(['collection', 'drop', 'c', '--yes'], env).status).toBe(0);
    expect(JSON.parse(cli(['collection', 'list', '--json'], env).stdout)).toHaveLength(0);
  });

  it('collection create takes --M (as the API names it; --m still works) and --ef-construction', () => {
    const d = storeDirs();
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    expect(cli(['init'], env).status).toBe(0);
    const a = JSON.parse(cli(['collection', 'create', 'a', '--dim', '3', '--M', '8', '--ef-construction', '50', '--json'], env).stdout) as {
      M: number;
      efConstruction: number;
    };
    expect(a).toMatchObject({ M: 8, efConstruction: 50 });
    const b = JSON.parse(cli(['collection', 'create', 'b', '--dim', '3', '--m', '12', '--json'], env).stdout) as { M: number };
    expect(b.M).toBe(12);
    const bad = cli(['collection', 'create', 'c', '--dim', '3', '--M', '1'], env);
    expect(bad.status).toBe(EXIT.ERROR);
    expect(bad.stderr).toMatch(/^error VS_INVALID_ARGUMENT: --M expected an integer in 2\.\.256/);
  });

  it('the demo removes its temporary store, data and key unless --dir is given', async () => {
    const d = storeDirs();
    const tmp = join(d.root, 'tmp');
    await fs.mkdir(tmp);
    const r = cli(['demo', '--json'], { TMPDIR: tmp });
    expect(r.status, r.stderr).toBe(0);
    const summary = jsonLines(r, 'demo')[0] as { ok: boolean; dataDir: string; keyDir: string; kept: boolean };
    expect(summary).toMatchObject({ ok: true, kept: false });
    expect(summary.dataDir.startsWith(tmp)).toBe(true);
    expect(existsSync(summary.dataDir)).toBe(false);
    expect(existsSync(summary.keyDir)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
    const kept = cli(['demo', '--json', '--dir', join(d.root, 'keep')], {});
    const k = JSON.parse(kept.stdout) as { dataDir: string; kept: boolean };
    expect(k.kept).toBe(true);
    expect(existsSync(k.dataDir)).toBe(true);
  });
});
