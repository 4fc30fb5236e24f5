import type { ImportProgress } from '../store/index.js';
import { progressBar, type ProgressBar } from './progress.js';

/**
 * The progress bar of `vectorseal import` on stderr (a terminal only, never
 * with --json): first the check pass over the file's bytes, then the write
 * pass over its records, each with its rate and an ETA.
 */
export function importProgress(opts: { json?: boolean }, fileBytes: number): { update(p: ImportProgress): void; stop(): void } {
  let bar: ProgressBar | undefined;
  let phase: ImportProgress['phase'] | undefined;
  let started = Date.now();
  const start = (p: ImportProgress): ProgressBar => {
    bar?.stop();
    phase = p.phase;
    started = Date.now();
    const unit = p.phase === 'check' ? 'MB' : 'records';
    const label = p.phase === 'check' ? 'checking' : 'writing ';
    return progressBar(opts, `${label} [{bar}] {percentage}% | {shown} ${unit} | {rate} records/s | ETA {eta_formatted}`, {
      etaBuffer: 50,
    });
  };
  return {
    update(p) {
      if (!bar || phase !== p.phase) bar = start(p);
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const rate = Math.round(p.records / seconds).toLocaleString('en');
      if (p.phase === 'check') {
        bar.update(p.bytes, Math.max(1, fileBytes), { shown: `${(p.bytes / 1e6).toFixed(1)}/${(fileBytes / 1e6).toFixed(1)}`, rate });
      } else {
        bar.update(p.records, Math.max(1, p.total ?? 1), { shown: `${p.records}/${p.total ?? '?'}`, rate });
      }
    },
    stop() {
      bar?.stop();
    },
  };
}
