/**
 * Named crash points for fault-injection tests. A test runs a child process
 * with `VECTORSEAL_CRASH_AT=<name>` (optionally `<name>#<n>` for the n-th time
 * the point is reached) and the process kills itself with SIGKILL there, as a
 * power cut or an OOM kill would. Unset, each point costs one comparison.
 */
const target = process.env['VECTORSEAL_CRASH_AT'];
const [targetName, targetCount] = target ? splitTarget(target) : [undefined, 0];
let hits = 0;

function splitTarget(value: string): [string, number] {
  const hash = value.lastIndexOf('#');
  if (hash < 0) return [value, 1];
  return [value.slice(0, hash), Number(value.slice(hash + 1)) || 1];
}

/** Kills the process here when the environment asks for it. */
export function crashPoint(name: string): void {
  if (targetName === undefined || name !== targetName) return;
  hits += 1;
  if (hits === targetCount) process.kill(process.pid, 'SIGKILL');
}
