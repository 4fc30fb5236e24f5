import cliProgress from 'cli-progress';

/** One progress bar; it appears on the first update. */
export interface ProgressBar {
  update(done: number, total: number, payload?: Record<string, string>): void;
  stop(): void;
}

const SILENT: ProgressBar = { update: () => undefined, stop: () => undefined };

/**
 * The one way the CLI shows progress: a bar on stderr when it is a terminal,
 * never with --json (stdout then carries only the JSON and stderr only errors).
 * `format` is cli-progress's, with `{bar} {value} {total}` and payload tokens.
 */
export function progressBar(
  opts: { json?: boolean },
  format: string,
  options: { clearOnComplete?: boolean; etaBuffer?: number } = {},
): ProgressBar {
  if (opts.json || !process.stderr.isTTY) return SILENT;
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format, ...options }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(done, total, payload) {
      if (!started) {
        bar.start(total, done, payload);
        started = true;
        return;
      }
      bar.setTotal(total);
      bar.update(done, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * Progress of a job that works through several labelled parts in turn
 * (maintenance re-encrypts collection after collection): one bar per label.
 */
export function progressReporter(opts: { json?: boolean }): {
  update(label: string, p: { done: number; total: number }): void;
  stop(): void;
} {
  let bar: ProgressBar | undefined;
  let shown: string | undefined;
  return {
    update(label, p) {
      if (bar && shown !== label) {
        bar.stop();
        bar = undefined;
      }
      shown = label;
      bar ??= progressBar(opts, `${label} [{bar}] {value}/{total} segment groups`);
      bar.update(p.done, p.total);
    },
    stop() {
      bar?.stop();
    },
  };
}
