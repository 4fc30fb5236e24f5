import cliProgress from 'cli-progress';

/** A progress bar on stderr when it is a terminal (never with --json); silent otherwise. */
export function progressReporter(opts: { json?: boolean }): { update(label: string, p: { done: number; total: number }): void; stop(): void } {
  if (opts.json || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  let bar: cliProgress.SingleBar | undefined;
  let shown: string | undefined;
  return {
    update(label, p) {
      // One bar per label: maintenance re-encrypts several collections in turn.
      if (bar && shown !== label) {
        bar.stop();
        bar = undefined;
      }
      shown = label;
      if (!bar) {
        bar = new cliProgress.SingleBar({ stream: process.stderr, format: `${label} [{bar}] {value}/{total} segment groups` }, cliProgress.Presets.shades_classic);
        bar.start(p.total, p.done);
      }
      bar.setTotal(p.total);
      bar.update(p.done);
    },
    stop() {
      bar?.stop();
    },
  };
}
