import cliProgress from 'cli-progress';
import type { ImportProgress } from '../store/index.js';

/**
 * The progress bar of `vectorseal import` on stderr (a terminal only, never
 * with --json): first the check pass over the file's bytes, then the write
 * pass over its records, each with its rate and an ETA.
 */
export function importProgress(opts: { json?: boolean }, fileBytes: number): { update(p: ImportProgress): void; stop(): void } {
  if (opts.json || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  let bar: cliProgress.SingleBar | undefined;
  let phase: ImportProgress['phase'] | undefined;
  let started = Date.now();
  const start = (p: ImportProgress): cliProgress.SingleBar => {
    bar?.stop();
    phase = p.phase;
    started = Date.now();
    const unit = p.phase === 'check' ? 'MB' : 'records';
    const b = new cliProgress.SingleBar(
      { stream: process.stderr, etaBuffer: 50, format: `${p.phase === 'check' ? 'checking' : 'writing '} [{bar}] {percentage}% | {shown} ${unit} | {rate} records/s | ETA {eta_formatted}` },
      cliProgress.Presets.shades_classic,
    );
    b.start(p.phase === 'check' ? Math.max(1, fileBytes) : Math.max(1, p.total ?? 1), 0, { shown: '0', rate: '0' });
    return b;
  };
  return {
    update(p) {
      if (!bar || phase !== p.phase) bar = start(p);
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const rate = Math.round(p.records / seconds).toLocaleString('en');
      if (p.phase === 'check') bar.update(p.bytes, { shown: `${(p.bytes / 1e6).toFixed(1)}/${(fileBytes / 1e6).toFixed(1)}`, rate });
      else bar.update(p.records, { shown: `${p.records}/${p.total ?? '?'}`, rate });
    },
    stop() {
      bar?.stop();
    },
  };
}
