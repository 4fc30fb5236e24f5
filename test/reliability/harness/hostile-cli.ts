import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { runCli, type CliEnv, type CliResult as Run } from '../../helpers/cli.js';

/**
 * Hostile input on the `vectorseal` command: missing and malformed
 * arguments must end with a non-zero exit, a one-line `error <code>:` (or
 * commander's `error:` usage line), and no stack trace; the store must still
 * answer the same search afterwards.
 */

export interface CliReport {
  tried: number;
  rejected: number;
  accepted: number;
  untyped: number;
  damaged: number;
  wrongResults: number;
  failures: string[];
}

const cli = (args: string[], env: CliEnv): Promise<Run> => runCli(args, { env });

export async function runHostileCli(options: { root: string; runs: number; seed: number }): Promise<CliReport> {
  const dir = join(options.root, 'data');
  const env: CliEnv = { VECTORSEAL_KEY_DIR: join(options.root, 'keys'), VECTORSEAL_DIR: undefined, VECTORSEAL_DEBUG: undefined };
  const report: CliReport = { tried: 0, rejected: 0, accepted: 0, untyped: 0, damaged: 0, wrongResults: 0, failures: [] };
  const must = async (args: string[]): Promise<Run> => {
    const r = await cli(args, env);
    if (r.status !== 0) throw new Error(`setup failed: ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await must(['init', '--dir', dir]);
  await must(['collection', 'create', 'docs', '--dim', '4', '--dir', dir]);
  const data = join(options.root, 'data.jsonl');
  await fs.writeFile(
    data,
    `${[0, 1, 2].map((i) => JSON.stringify({ id: `d${i}`, vector: [i, 1, 2, 3], metadata: { lang: 'en' } })).join('\n')}\n`,
  );
  await must(['import', 'docs', data, '--dir', dir]);
  const query = ['search', 'docs', '--vector', '[1,1,2,3]', '--k', '2', '--json', '--dir', dir];
  const baseline = (await must(query)).stdout;

  const check = async (args: string[]): Promise<void> => {
    report.tried++;
    const r = await cli(args, env);
    const stack = /\n\s+at .+\(.+:\d+:\d+\)|\n\s+at file:/.test(r.stderr);
    if (r.status === 0) {
      report.accepted++;
    } else if (!stack && (/^error( VS_[A-Z_]+)?: /m.test(r.stderr) || (args.length === 0 && r.stderr.startsWith('Usage:')))) {
      report.rejected++;
    } else {
      report.untyped++;
      if (report.failures.length < 20) report.failures.push(`${JSON.stringify(args)} -> exit ${r.status}: ${r.stderr.slice(0, 300)}`);
    }
  };
  const fixed: string[][] = [
    [],
    ['search'],
    ['search', 'docs', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2', '--dir', dir],
    ['search', 'docs', '--vector', '{"a":1}', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3]', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,"x"]', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,4]', '--filter', '{bad json', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,4]', '--filter', '{"lang":{"$regex":"x"}}', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,4]', '--k', '-1', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,4]', '--k', 'many', '--dir', dir],
    ['search', 'nope', '--vector', '[1,2,3,4]', '--dir', dir],
    ['search', 'docs', '--vector', '[1,2,3,4]', '--dir', join(options.root, 'does-not-exist')],
    ['collection', 'create', 'x', '--dim', 'abc', '--dir', dir],
    ['collection', 'create', 'x', '--dim', '0', '--dir', dir],
    ['collection', 'create', '../evil', '--dim', '4', '--dir', dir],
    ['collection', 'create', 'docs', '--dim', '4', '--dir', dir],
    ['import', 'docs', join(options.root, 'missing.jsonl'), '--dir', dir],
    ['rotate-kek', '--dir', join(options.root, 'does-not-exist')],
    ['info', '--dir', join(options.root, 'does-not-exist')],
    ['no-such-command'],
  ];
  for (const args of fixed) await check(args);
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), fc.string({ maxLength: 6 }), async (vector, filter, k) => {
      await check(['search', 'docs', '--vector', vector, '--filter', filter, '--k', k, '--dir', dir]);
      return true;
    }),
    { numRuns: options.runs, seed: options.seed },
  );
  if ((await cli(query, env)).stdout !== baseline) {
    report.damaged++;
    report.wrongResults++;
    report.failures.push('the same search answers differently after the hostile calls');
  }
  return report;
}
