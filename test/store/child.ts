import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'writer-child.mjs');

export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  acks: string[];
  stderr: string;
}

/** Runs the writer child to completion or to its crash point. */
export function runChild(args: string[], crashAt?: string): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['VECTORSEAL_CRASH_AT'];
    if (crashAt) env['VECTORSEAL_CRASH_AT'] = crashAt;
    const child = spawn(process.execPath, [CHILD, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, acks: out.split('\n').filter(Boolean), stderr: err }));
  });
}
