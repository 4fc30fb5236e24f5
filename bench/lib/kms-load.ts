import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, resultsDir } from './paths.js';
import type { Log } from './progress.js';

const run = promisify(execFile);

/**
 * The key service's load figure (bench/kms-load.ts writes
 * bench/results/kms-load.json): read when present, otherwise measured by
 * compiling and running that benchmark for a few seconds.
 */
export async function kmsLoadResult(log: Log, options: { rerun: boolean; seconds: number }): Promise<Record<string, unknown> | undefined> {
  const file = join(resultsDir(), 'kms-load.json');
  if (!options.rerun) {
    try {
      return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    } catch {
      // Not measured yet: run it below.
    }
  }
  log(`key service load: running bench/kms-load.ts for ${options.seconds} s`);
  const root = repoRoot();
  try {
    await run(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'bench', 'tsconfig.kms-load.json')],
      { cwd: root },
    );
    const { stdout } = await run(
      process.execPath,
      [join(root, 'dist', 'bench-kms', 'bench', 'kms-load.js'), '--seconds', String(options.seconds)],
      { cwd: root, timeout: (options.seconds + 60) * 1000 },
    );
    log(`  ${stdout.trim()}`);
    return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    log(`  key service load benchmark failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    return undefined;
  }
}
