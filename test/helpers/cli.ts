import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The one way tests run the built `vectorseal` command (`npm run build` first):
 * `runCliSync` and `runCli` wait for the exit, `spawnCli` hands back a
 * long-running child (a `kms serve`). Every test spawns the same file, so a
 * moved entry point is fixed here once.
 */

/** The checkout's root, found upwards from this file (so a compiled copy of the test helpers finds it too). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('repository root not found above test/helpers/cli.ts');
}

/** dist/cli/main.js of this checkout. */
export const CLI_BIN = join(repoRoot(), 'dist', 'cli', 'main.js');

/** Variables laid over the test's own environment; `undefined` removes one. */
export type CliEnv = Record<string, string | undefined>;

export interface CliOptions {
  env?: CliEnv | undefined;
  /** Written to the child's stdin (which is closed after it); stdin is empty without it. */
  input?: string | undefined;
  /** Milliseconds before the child is sent SIGTERM; none by default. */
  timeout?: number | undefined;
  cwd?: string | undefined;
}

export interface CliResult {
  /** Exit status; null when a signal ended the child. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** process.env with `env` laid over it. */
export function cliEnv(env: CliEnv = {}): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete merged[name];
    else merged[name] = value;
  }
  return merged;
}

/** Runs `vectorseal args...` and waits for it (blocks the test's event loop). */
export function runCliSync(args: readonly string[], options: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI_BIN, ...args], {
    encoding: 'utf8',
    env: cliEnv(options.env),
    input: options.input ?? '',
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  if (r.error && r.status === null && r.signal === null) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `vectorseal args...` without blocking the event loop (servers in the test keep answering). */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      env: cliEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A child that exits before reading its input closes the pipe: not the test's failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const timer = options.timeout === undefined ? undefined : setTimeout(() => child.kill('SIGTERM'), options.timeout);
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Starts `vectorseal args...` and returns the running child (stdin ignored, output piped unless `stdio` says otherwise). */
export function spawnCli(args: readonly string[], options: { env?: CliEnv; stdio?: StdioOptions } = {}): ChildProcess {
  return spawn(process.execPath, [CLI_BIN, ...args], { env: cliEnv(options.env), stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'] });
}

/** What a successful run printed, parsed as JSON; throws with the run's stderr when it exited non-zero. */
export function cliJson<T = Record<string, unknown>>(r: CliResult, args: readonly string[] = []): T {
  if (r.status !== 0) throw new Error(`vectorseal ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
