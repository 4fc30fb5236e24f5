import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { promisify } from 'node:util';

/** Where the figures were measured. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  node: string;
  /** The OpenSSL Node is linked against (the native engine uses it too). */
  nodeOpenssl: string;
  /** The `openssl` command that `openssl speed` ran. */
  openssl: string;
  platform: string;
  loadAverage: number[];
}

/** The CPU model from /proc/cpuinfo (os.cpus() can be less specific in VMs). */
function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return cpus()[0]?.model ?? 'unknown';
}

export async function describeMachine(): Promise<Machine> {
  let openssl = 'not installed';
  try {
    openssl = (await promisify(execFile)('openssl', ['version'])).stdout.trim();
  } catch {
    // The openssl column says n/a then.
  }
  return {
    cpu: cpuModel(),
    cores: availableParallelism(),
    memoryGB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    nodeOpenssl: process.versions.openssl ?? 'unknown',
    openssl,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
