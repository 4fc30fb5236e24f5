import { Command } from 'commander';
import { vi } from 'vitest';

/**
 * Runs CLI commands inside the test process: `register` adds them to a fresh
 * program (with whatever test-only hooks the test passes it), the program parses
 * `args`, and what the commands wrote to stdout comes back with the exit code
 * they set. For code the built binary cannot reach (an injected key resolver,
 * spies); test/helpers/cli.ts runs the binary itself.
 */
export async function runCommands(
  register: (program: Command) => void,
  args: readonly string[],
): Promise<{ stdout: string; exitCode: number }> {
  const program = new Command('vectorseal').exitOverride();
  register(program);
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'vectorseal', ...args]);
  } finally {
    spy.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout, exitCode };
}
