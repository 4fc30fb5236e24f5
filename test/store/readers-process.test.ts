import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backupStore, restoreBackup } from '../../src/backup/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { CLI_BIN, runCliSync } from '../helpers/cli.js';
import { storeDirs, type TestStoreDirs } from '../helpers/store.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'reader-writer-child.mjs');

/** Same as the child's: the vector of record i. */
function vectorOf(i: number): number[] {
  return Array.from({ length: 8 }, (_, j) => Math.sin(i * 7.3 + j * 1.9) * 10 + j);
}

interface Writer {
  child: ChildProcessWithoutNullStreams;
  /** Records 0..acked-1 are durable (acknowledged by the writer). */
  acked: number;
  flushes: number;
  compactions: number;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

function startWriter(d: TestStoreDirs): Writer {
  const child = spawn(process.execPath, [CHILD, d.dir, d.keyDir, d.stagingDir], { stdio: ['pipe', 'pipe', 'pipe'] });
  const w = { child, acked: 0, flushes: 0, compactions: 0 } as Writer;
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  let buf = '';
  let onReady: () => void = () => undefined;
  w.ready = new Promise((r) => (onReady = r));
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'ready') onReady();
      else if (line.startsWith('u ')) w.acked = Number(line.slice(2));
      else if (line === 'f') w.flushes++;
      else if (line === 'c') w.compactions++;
    }
  });
  w.exited = new Promise((r) =>
    child.on('exit', (code) => {
      if (code !== 0) console.error(stderr);
      r(code);
    }),
  );
  return w;
}

const writers: Writer[] = [];
afterEach(async () => {
  for (const w of writers.splice(0)) {
    if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 3000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}

/**
 * Checks a reader's snapshot of 'c': every record acknowledged before it was opened
 * is there with its vector, and search matches a brute force over the snapshot.
 */
function checkSnapshot(r: Store, ackedBefore: number): number {
  const c = r.collection('c');
  const ids = c.ids();
  expect(ids.length).toBeGreaterThanOrEqual(ackedBefore);
  const records = c.getMany(ids);
  for (let i = 0; i < ackedBefore; i++) expect(c.has(`id-${i}`), `id-${i}`).toBe(true);
  for (const rec of records) {
    const i = Number(rec!.id.slice(3));
    expect(Array.from(rec!.vector)).toEqual(vectorOf(i).map(Math.fround));
    expect(rec!.metadata).toEqual({ i });
  }
  // ef above the record count: the HNSW search is exhaustive, so it must equal the brute force.
  const q = vectorOf(ackedBefore + 0.5);
  const brute = records
    .map((rec) => ({ id: rec!.id, d: rec!.vector.reduce((s, x, j) => s + (x - (q[j] as number)) ** 2, 0) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, 5)
    .map((x) => x.id);
  expect(c.search(q, 5, { ef: Math.max(64, ids.length + 10) }).map((h) => h.id)).toEqual(brute);
  return ids.length;
}

describe('readers in other processes than the writer', () => {
  beforeAll(async () => {
    // The writer child and the CLI run the built package: `npm run build` first.
    await fs.access(CLI_BIN);
  });

  it('a writer process ingests, flushes and compacts while readers open, search, refresh and back up; ' +
    'no error, nothing acknowledged missing', async () => {
    const d = storeDirs();
    const w = startWriter(d);
    writers.push(w);
    await w.ready;
    await waitFor(() => w.acked > 0);
    // Counts the snapshot reads that raced the writer and were read again (debug log lines).
    let races = 0;
    const logger = pino({ level: 'debug' }, { write: (line: string) => void (line.includes('raced the writer') && races++) });
    const keys = { provider: 'local' as const, keyDir: d.keyDir };
    const longLived = await openStore({ dir: d.dir, readOnly: true, keys, stagingDir: d.stagingDir, logger });
    let last = 0;
    try {
      for (let round = 0; round < 30; round++) {
        expect(w.child.exitCode, 'the writer is still running').toBe(null);
        const ackedBefore = w.acked;
        if (round % 2 === 0) {
          await longLived.refresh();
          const n = checkSnapshot(longLived, ackedBefore);
          expect(n).toBeGreaterThanOrEqual(last);
          last = n;
        } else {
          const r = await openStore({ dir: d.dir, readOnly: true, keys, stagingDir: d.stagingDir, logger });
          try {
            const n = checkSnapshot(r, ackedBefore);
            const info = r.listCollections();
            expect(info[0]).toMatchObject({ name: 'c', count: n });
            expect(r.collection('c').stats().count).toBe(n);
            if (round % 5 === 1) {
              const to = join(d.root, `backup-${round}`);
              const report = await backupStore(r, { to });
              expect(report.collections[0]?.name).toBe('c');
              const restored = join(d.root, `restored-${round}`);
              await restoreBackup({ from: to, dir: restored, localKeyDir: d.keyDir, stagingDir: d.stagingDir });
              const s = await openStore({ dir: restored, keys, stagingDir: d.stagingDir });
              try {
                expect(s.collection('c').ids().sort()).toEqual(r.collection('c').ids().sort());
              } finally {
                await s.close();
              }
            }
          } finally {
            await r.close();
          }
        }
      }
    } finally {
      await longLived.close();
    }
    // The rounds ran beside real flushes and compactions (and their file removals).
    expect(w.flushes).toBeGreaterThan(3);
    expect(w.compactions).toBeGreaterThan(0);
    console.log(
      `30 reader rounds beside ${w.flushes} flushes and ${w.compactions} compactions: ` +
        `${races} snapshot reads raced the writer and were read again`,
    );
    w.child.stdin.write('stop\n');
    expect(await w.exited).toBe(0);
    // After the writer closed, a reader sees everything it acknowledged.
    const r = await openStore({ dir: d.dir, readOnly: true, keys, stagingDir: d.stagingDir });
    try {
      expect(r.collection('c').count).toBe(w.acked);
    } finally {
      await r.close();
    }
  }, 180_000);

  it('the CLI read commands (search, info, collection list, kek list, backup) work while an application holds the store', async () => {
    const d = storeDirs();
    const w = startWriter(d);
    writers.push(w);
    await w.ready;
    await waitFor(() => w.acked >= 50);
    const env = { VECTORSEAL_DIR: d.dir, VECTORSEAL_KEY_DIR: d.keyDir };
    const run = (args: string[]): unknown => {
      const r = runCliSync([...args, '--json', '--staging-dir', d.stagingDir], { env });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      return JSON.parse(lines[0] as string);
    };
    for (let i = 0; i < 2; i++) {
      const acked = w.acked;
      const hits = run(['search', 'c', '--vector', JSON.stringify(vectorOf(7)), '--k', '1']) as { id: string }[];
      expect(hits[0]?.id).toBe('id-7');
      const list = run(['collection', 'list']) as { name: string; count: number }[];
      expect(list[0]?.count).toBeGreaterThanOrEqual(acked);
      const info = run(['info']) as { collections: { name: string }[] };
      expect(info.collections.map((c) => c.name)).toEqual(['c']);
      run(['kek', 'list']);
      const backup = run(['backup', '--to', join(d.root, 'backup')]) as { snapshot: number };
      expect(backup.snapshot).toBe(i + 1);
    }
    // The writer was never disturbed.
    expect(w.child.exitCode).toBe(null);
    w.child.stdin.write('stop\n');
    expect(await w.exited).toBe(0);
  }, 180_000);
});
