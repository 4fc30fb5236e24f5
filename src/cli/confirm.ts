import { createInterface } from 'node:readline/promises';
import { InvalidArgumentError } from '../errors.js';

/**
 * Asks on the terminal before something that cannot be undone: the user types
 * `expected` to go on. Without a terminal (a script, a pipe) or with --json
 * there is no one to ask: the command needs --yes instead.
 */
export async function confirmOrRefuse(opts: { yes?: boolean; json?: boolean }, question: string, expected: string): Promise<void> {
  if (opts.yes) return;
  if (opts.json || !process.stdin.isTTY || !process.stderr.isTTY) {
    throw new InvalidArgumentError(`${question}: pass --yes to confirm (no terminal to ask on)`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question}\ntype "${expected}" to confirm: `);
    if (answer.trim() !== expected) throw new InvalidArgumentError('not confirmed: nothing was changed');
  } finally {
    rl.close();
  }
}
