/**
 * Progress on stderr while long steps run: a counter line rewritten in place
 * on a terminal, and a line every few seconds otherwise (CI logs).
 */
export type Log = (line: string) => void;

export const stderrLog: Log = (line) => {
  process.stderr.write(`${line}\n`);
};

export const silentLog: Log = () => undefined;

export interface Progress {
  tick(done: number): void;
  end(note?: string): void;
}

export function progress(log: Log, label: string, total: number): Progress {
  const tty = log === stderrLog && process.stderr.isTTY === true;
  const started = Date.now();
  let last = 0;
  const line = (done: number): string => {
    const s = (Date.now() - started) / 1000;
    return `${label}: ${done}/${total} (${Math.round((done / Math.max(1, total)) * 100)}%, ${s.toFixed(0)} s)`;
  };
  return {
    tick(done) {
      const now = Date.now();
      if (now - last < (tty ? 200 : 5000)) return;
      last = now;
      if (tty) process.stderr.write(`\r${line(done)}\x1b[K`);
      else log(line(done));
    },
    end(note) {
      const s = ((Date.now() - started) / 1000).toFixed(1);
      if (tty) process.stderr.write('\r\x1b[K');
      log(`${label}: done in ${s} s${note ? ` (${note})` : ''}`);
    },
  };
}
