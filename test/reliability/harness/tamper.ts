import { cpSync, mkdirSync, promises as fs, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { VectorsealError, openStore, type Store } from '../../../src/index.js';
import { assertAuditTrailIntact } from '../../../src/audit/index.js';
import { Rng } from './rng.js';

/**
 * The tamper matrix: a flushed store with two collections is copied once per
 * case, one file is damaged, and the store is opened and read. Each case must
 * end in a typed error naming the damaged file (and page for segments), or,
 * where the store still opens, in exactly the expected records and search
 * results. Cases that cannot be told apart by design are listed, not hidden.
 */

const DIM = 16;
const SEGMENT_DATA_START = 52 + 56;
const SEALED_PAGE = 16_384 + 16;

export interface TamperCase {
  kind: string;
  name: string;
  /** Set when the case cannot be detected by design; the store must then return the same data. */
  harmlessBecause?: string;
  /** Set when the case is undetectable by design and not harmless (documented limits). */
  limitBecause?: string;
  /** Set when a typed error that does not name the file is the right answer (why). */
  unnamedBecause?: string;
  /** Set for a case found detectable but not detected, reported rather than fixed (why). */
  knownFinding?: string;
  apply: (dir: string) => Promise<string>;
}

export interface TamperOutcome {
  kind: string;
  name: string;
  result: 'detected' | 'harmless' | 'limit' | 'finding' | 'wrong-result' | 'untyped' | 'undetected' | 'wrong-file';
  detail: string;
}

export interface TamperReport {
  cases: number;
  detected: number;
  harmless: number;
  limits: number;
  wrongResults: number;
  untyped: number;
  undetected: number;
  byKind: Record<string, { tried: number; detected: number; harmless: number }>;
  accepted: { case: string; reason: string }[];
  documentedLimits: { case: string; reason: string }[];
  /** Detectable, not detected, reported (not fixed here). */
  findings: { case: string; reason: string }[];
  failures: TamperOutcome[];
}

interface Expected {
  records: Map<string, Map<string, { vector: number[]; metadata: unknown }>>;
  queries: { collection: string; vector: number[]; ids: string[] }[];
}

interface Template {
  dir: string;
  keyDir: string;
  ids: { a: string; b: string };
  /** Older copies of files, by name: the state before the later writes. */
  older: Map<string, Buffer>;
  expected: Expected;
}

const vec = (r: Rng): number[] => Array.from({ length: DIM }, () => (r.int(20001) - 10000) / 64);

async function buildTemplate(root: string, seed: number): Promise<Template> {
  const dir = join(root, 'template', 'data');
  const keyDir = join(root, 'template', 'keys');
  const r = new Rng(seed);
  const store = await openStore({ dir, create: true, keys: { provider: 'local', keyDir } });
  const older = new Map<string, Buffer>();
  const a = await store.createCollection('a', { dim: DIM });
  const snapshot = async (name: string, path: string): Promise<void> => {
    older.set(name, await fs.readFile(path));
  };
  await snapshot('CATALOG', join(dir, 'CATALOG'));
  const b = await store.createCollection('b', { dim: DIM });
  const big = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      id: `${prefix}${i}`,
      vector: vec(r),
      metadata: { n: i, tag: `t${i % 7}`, text: 'x'.repeat(20 + (i % 50)) },
    }));
  await a.upsert(big('a', 1200));
  await b.upsert(big('b', 900));
  await store.flush();
  await snapshot('MANIFEST.a', join(a.dir, 'MANIFEST'));
  await snapshot('STATE.after-flush', join(dir, 'STATE'));
  await a.upsert(big('a2-', 300));
  await a.delete(['a1', 'a2', 'a3', 'a500']);
  await b.delete(['b7']);
  await store.flush();
  await snapshot('KEYRING.before-rekey', join(dir, 'KEYRING'));
  await snapshot('MANIFEST.a.before-flush3', join(a.dir, 'MANIFEST'));
  if (typeof (a as { rekey?: unknown }).rekey === 'function') await (a as unknown as { rekey(): Promise<number> }).rekey();
  else await store.keys.rekey(a.info.id);
  await a.upsert(big('a3-', 50));
  await a.flush();
  await snapshot('KEYRING.before-rotation', join(dir, 'KEYRING'));
  await store.rotateKek();
  await snapshot('KEYRING.after-rekey', join(dir, 'KEYRING'));
  // Unflushed writes stay in the WAL.
  await a.upsert(big('aw-', 40));
  await a.delete(['a10']);
  await b.upsert(big('bw-', 20));
  const walA = await lastWal(a.dir);
  await snapshot('WAL.a.partial', walA);
  await a.upsert(big('aw2-', 10));
  await snapshot('STATE.before-close', join(dir, 'STATE'));
  const expected = snapshotExpected(store, r);
  await store.close({ flush: false });
  return { dir, keyDir, ids: { a: a.info.id, b: b.info.id }, older, expected };
}

async function lastWal(colDir: string): Promise<string> {
  const names = (await fs.readdir(join(colDir, 'wal'))).sort();
  return join(colDir, 'wal', names.at(-1) as string);
}

function snapshotExpected(store: Store, r: Rng): Expected {
  const records: Expected['records'] = new Map();
  const queries: Expected['queries'] = [];
  for (const name of ['a', 'b']) {
    const col = store.collection(name);
    const m = new Map<string, { vector: number[]; metadata: unknown }>();
    for (const id of col.ids()) {
      const rec = col.get(id);
      if (rec) m.set(id, { vector: Array.from(rec.vector), metadata: rec.metadata });
    }
    records.set(name, m);
    for (let q = 0; q < 5; q++) {
      const vector = vec(r);
      queries.push({ collection: name, vector, ids: col.search(vector, 10).map((h) => h.id) });
    }
  }
  return { records, queries };
}

/** Compares an opened store with the template's records and search results; returns the first difference. */
function compare(store: Store, expected: Expected): string | undefined {
  for (const [name, want] of expected.records) {
    const col = store.collection(name);
    if (col.count !== want.size) return `${name}: ${col.count} records, expected ${want.size}`;
    for (const [id, rec] of want) {
      const got = col.get(id);
      if (!got) return `${name}/${id} missing`;
      if (!isDeepStrictEqual(Array.from(got.vector), rec.vector) || !isDeepStrictEqual(got.metadata, rec.metadata))
        return `${name}/${id} differs`;
    }
  }
  for (const q of expected.queries) {
    const ids = store
      .collection(q.collection)
      .search(q.vector, 10)
      .map((h) => h.id);
    if (!isDeepStrictEqual(ids, q.ids)) return `${q.collection}: search results differ`;
  }
  return undefined;
}

const flipBit = (at: number, bit: number) => async (file: string) => {
  const b = await fs.readFile(file);
  const pos = at % b.length;
  b[pos] = (b[pos] as number) ^ (1 << bit);
  await fs.writeFile(file, b);
  return `byte ${pos} bit ${bit}`;
};

function casesFor(t: Template, rng: Rng, flips: number): TamperCase[] {
  const colA = join('collections', t.ids.a);
  const colB = join('collections', t.ids.b);
  const seg = (col: string, group: number, kind: string) => join(col, 'seg', `${String(group).padStart(12, '0')}.${kind}.vseg`);
  const files: { kind: string; rel: string; segment?: boolean; other?: string; sibling?: string }[] = [
    { kind: 'index segment', rel: seg(colA, 1, 'index'), segment: true, other: seg(colB, 1, 'index'), sibling: seg(colA, 2, 'index') },
    {
      kind: 'vectors segment',
      rel: seg(colA, 1, 'vectors'),
      segment: true,
      other: seg(colB, 1, 'vectors'),
      sibling: seg(colA, 2, 'vectors'),
    },
    {
      kind: 'metadata segment',
      rel: seg(colA, 1, 'metadata'),
      segment: true,
      other: seg(colB, 1, 'metadata'),
      sibling: seg(colA, 2, 'metadata'),
    },
    { kind: 'tombstones segment', rel: seg(colA, 2, 'tombstones'), segment: true, other: seg(colB, 2, 'tombstones') },
    { kind: 'WAL', rel: '', other: '' },
    { kind: 'MANIFEST', rel: join(colA, 'MANIFEST'), segment: true, other: join(colB, 'MANIFEST') },
    { kind: 'KEYRING', rel: 'KEYRING' },
    { kind: 'CATALOG', rel: 'CATALOG' },
    { kind: 'STORE', rel: 'STORE' },
    { kind: 'STATE', rel: 'STATE' },
    { kind: 'audit log', rel: 'audit.log' },
  ];
  const out: TamperCase[] = [];
  for (const f of files) {
    const resolve = async (dir: string): Promise<string> => (f.kind === 'WAL' ? lastWal(join(dir, colA)) : join(dir, f.rel));
    const add = (name: string, fn: (file: string, dir: string) => Promise<string>, extra: Partial<TamperCase> = {}): void => {
      out.push({
        kind: f.kind,
        name,
        ...extra,
        apply: async (dir) => {
          const file = await resolve(dir);
          await fn(file, dir);
          return file;
        },
      });
    };
    for (let i = 0; i < flips; i++) {
      const at = rng.int(1 << 30);
      const bit = rng.int(8);
      add(`bit flip #${i + 1}`, flipBit(at, bit));
    }
    // CATALOG and STORE are hashed in the store state, so even a cut newline is caught; the keyring's own check parses first.
    add('truncated to 0 bytes', (file) => fs.truncate(file, 0).then(() => ''));
    add('truncated by half', async (file) => fs.truncate(file, Math.floor((await fs.stat(file)).size / 2)).then(() => ''));
    add('last byte cut', async (file) => fs.truncate(file, (await fs.stat(file)).size - 1).then(() => ''), {
      ...(f.kind === 'KEYRING'
        ? { harmlessBecause: 'the byte cut is the trailing newline of the JSON text; the parsed and checksummed contents are identical' }
        : {}),
    });
    add(
      'extended by 1 byte',
      (file) => fs.appendFile(file, Buffer.from([0])).then(() => ''),
      f.kind === 'WAL'
        ? { harmlessBecause: TORN_TAIL }
        : f.kind === 'KEYRING'
          ? { harmlessBecause: KEYRING_TORN_TAIL }
          : f.kind === 'audit log'
            ? { harmlessBecause: AUDIT_TORN_TAIL }
            : {},
    );
    // Random bytes after the live WAL either fail authentication or read as a torn record (dropped, never applied).
    add(
      'extended by a page of random bytes',
      (file) => fs.appendFile(file, Buffer.from(Array.from({ length: SEALED_PAGE }, () => rng.int(256)))).then(() => ''),
      f.kind === 'WAL' ? { harmlessBecause: TORN_TAIL } : {},
    );
    add('deleted', (file) => fs.rm(file).then(() => ''), {
      ...(f.kind === 'STORE' ? { unnamedBecause: 'without STORE the directory is not a store: NotFoundError names the directory' } : {}),
    });
    if (f.segment) {
      add('pages 0 and 1 swapped', async (file) => {
        const b = await fs.readFile(file);
        if (b.length < SEGMENT_DATA_START + 2 * SEALED_PAGE) throw new Skip('fewer than two pages');
        const p0 = Buffer.from(b.subarray(SEGMENT_DATA_START, SEGMENT_DATA_START + SEALED_PAGE));
        b.copy(b, SEGMENT_DATA_START, SEGMENT_DATA_START + SEALED_PAGE, SEGMENT_DATA_START + 2 * SEALED_PAGE);
        p0.copy(b, SEGMENT_DATA_START + SEALED_PAGE);
        await fs.writeFile(file, b);
        return '';
      });
      add('page 0 duplicated over page 1', async (file) => {
        const b = await fs.readFile(file);
        if (b.length < SEGMENT_DATA_START + 2 * SEALED_PAGE) throw new Skip('fewer than two pages');
        b.copy(b, SEGMENT_DATA_START + SEALED_PAGE, SEGMENT_DATA_START, SEGMENT_DATA_START + SEALED_PAGE);
        await fs.writeFile(file, b);
        return '';
      });
      add('page 0 duplicated (inserted)', async (file) => {
        const b = await fs.readFile(file);
        const p0 = b.subarray(SEGMENT_DATA_START, SEGMENT_DATA_START + SEALED_PAGE);
        await fs.writeFile(
          file,
          Buffer.concat([b.subarray(0, SEGMENT_DATA_START + SEALED_PAGE), p0, b.subarray(SEGMENT_DATA_START + SEALED_PAGE)]),
        );
        return '';
      });
    }
    if (f.other !== undefined) {
      add("swapped with the other collection's", async (file, dir) => {
        const other = f.kind === 'WAL' ? await lastWal(join(dir, colB)) : join(dir, f.other as string);
        await fs.copyFile(other, file);
        return '';
      });
    }
    if (f.sibling)
      add("replaced by another group's segment of the same kind", (file, dir) =>
        fs.copyFile(join(dir, f.sibling as string), file).then(() => ''),
      );
  }
  const old = (
    kind: string,
    name: string,
    key: string,
    rel: (dir: string) => Promise<string> | string,
    extra: Partial<TamperCase> = {},
  ): void => {
    out.push({
      kind,
      name,
      ...extra,
      apply: async (dir) => {
        const file = await rel(dir);
        await fs.writeFile(file, t.older.get(key) as Buffer);
        return file;
      },
    });
  };
  old('MANIFEST', 'older copy (before a flush)', 'MANIFEST.a', (d) => join(d, colA, 'MANIFEST'));
  old('MANIFEST', 'older copy (before the last flush, after a re-key)', 'MANIFEST.a.before-flush3', (d) => join(d, colA, 'MANIFEST'));
  old('KEYRING', 'older copy (before a KEK rotation)', 'KEYRING.before-rotation', (d) => join(d, 'KEYRING'), {
    harmlessBecause:
      'the old KEK version still exists and unwraps the very same DEKs; rotation rewraps, ' +
      'it does not change a DEK, so the store opens the same data',
  });
  old('KEYRING', 'older copy (before a DEK re-key)', 'KEYRING.before-rekey', (d) => join(d, 'KEYRING'), {
    unnamedBecause:
      'the refusal comes from the key manager: NotFoundError names the collection and the DEK version the ' +
      'segments need, not the KEYRING file',
  });
  old('CATALOG', 'older copy (before a collection was created)', 'CATALOG', (d) => join(d, 'CATALOG'));
  old('STATE', 'older copy (before later flushes)', 'STATE.after-flush', (d) => join(d, 'STATE'));
  old('STATE', 'older copy (the one before the clean close)', 'STATE.before-close', (d) => join(d, 'STATE'), {
    limitBecause:
      'STATE put back to its version before the clean close, when no file it covers changed since: ' +
      'the same data opens, only the newest WAL file is no longer covered whole; ' +
      'a whole-store rollback like this is caught with a freshness anchor (openStore freshnessAnchor)',
  });
  // The template store was closed cleanly: the store state seals its newest WAL file with record count and hash.
  old('WAL', 'older copy of the newest WAL file (a prefix of its records)', 'WAL.a.partial', (d) => lastWal(join(d, colA)));
  return out;
}

class Skip extends Error {}

const KEYRING_TORN_TAIL =
  "bytes after the keyring log's last newline are a torn record (a crash mid-append) and are dropped; " +
  'every complete record is MAC-verified, so the keyring opens the same data';
const TORN_TAIL = 'a partial record at the end of the live WAL is what a crash mid-append leaves; it is dropped on open and never applied';
const AUDIT_TORN_TAIL =
  "bytes after the audit trail's last newline are a torn entry (a power cut mid-append) " +
  'and are cut off on open; the entries left must still reach the head the store state recorded';
/** Runs every tamper case against copies of one template store. */
export async function runTamperMatrix(options: {
  root: string;
  seed: number;
  bitFlipsPerFile: number;
  log?: (l: string) => void;
}): Promise<TamperReport> {
  const t = await buildTemplate(options.root, options.seed);
  const rng = new Rng(options.seed ^ 0x5eed);
  const report: TamperReport = {
    cases: 0,
    detected: 0,
    harmless: 0,
    limits: 0,
    wrongResults: 0,
    untyped: 0,
    undetected: 0,
    byKind: {},
    accepted: [],
    documentedLimits: [],
    findings: [],
    failures: [],
  };
  let n = 0;
  for (const c of casesFor(t, rng, options.bitFlipsPerFile)) {
    const caseRoot = join(options.root, `case${n++}`);
    mkdirSync(caseRoot, { recursive: true });
    const dir = join(caseRoot, 'data');
    cpSync(t.dir, dir, { recursive: true });
    let file: string;
    try {
      file = await c.apply(dir);
    } catch (err) {
      rmSync(caseRoot, { recursive: true, force: true });
      if (err instanceof Skip) continue;
      throw err;
    }
    const o = await judge(c, dir, t, file);
    rmSync(caseRoot, { recursive: true, force: true });
    report.cases++;
    const k = (report.byKind[c.kind] ??= { tried: 0, detected: 0, harmless: 0 });
    k.tried++;
    if (o.result === 'detected') {
      report.detected++;
      k.detected++;
    } else if (o.result === 'harmless') {
      report.harmless++;
      k.harmless++;
      report.accepted.push({ case: `${c.kind}: ${c.name}`, reason: c.harmlessBecause ?? o.detail });
    } else if (o.result === 'limit') {
      report.limits++;
      report.documentedLimits.push({ case: `${c.kind}: ${c.name}`, reason: c.limitBecause ?? '' });
    } else if (o.result === 'finding') {
      report.findings.push({ case: `${c.kind}: ${c.name}`, reason: c.knownFinding ?? '' });
    } else {
      if (o.result === 'wrong-result') report.wrongResults++;
      else if (o.result === 'untyped') report.untyped++;
      else report.undetected++;
      report.failures.push(o);
    }
    options.log?.(`${c.kind} / ${c.name}: ${o.result} ${o.detail}`);
  }
  rmSync(join(options.root, 'template'), { recursive: true, force: true });
  return report;
}

async function judge(c: TamperCase, dir: string, t: Template, file: string): Promise<TamperOutcome> {
  const base = { kind: c.kind, name: c.name };
  const fileName = basename(file);
  let store: Store | undefined;
  try {
    store = await openStore({ dir, keys: { provider: 'local', keyDir: t.keyDir } });
    const diff = compare(store, t.expected);
    // The audit trail is checked the way `vectorseal audit verify` does.
    const lease = await store.keys.systemKey('audit');
    try {
      await assertAuditTrailIntact({ file: join(dir, 'audit.log'), macKey: lease.key, requireClosed: false });
    } finally {
      lease.release();
    }
    if (diff === undefined) {
      if (c.harmlessBecause) return { ...base, result: 'harmless', detail: 'same data' };
      if (c.limitBecause) return { ...base, result: 'limit', detail: 'same data, change unnoticed' };
      // Bytes no reader depends on (JSON whitespace, a timestamp) may change without effect.
      return { ...base, result: 'undetected', detail: 'opened with the same data, but the change went unnoticed' };
    }
    if (c.limitBecause) return { ...base, result: 'limit', detail: diff };
    return { ...base, result: 'wrong-result', detail: diff };
  } catch (err) {
    if (!(err instanceof VectorsealError))
      return { ...base, result: 'untyped', detail: `${(err as Error)?.name}: ${(err as Error)?.message}` };
    const named = (err as { file?: string }).file;
    const mentions = (named !== undefined && basename(named) === fileName) || err.message.includes(fileName);
    if (c.knownFinding) return { ...base, result: 'finding', detail: `${err.code}: ${err.message}` };
    if (!mentions && c.unnamedBecause) return { ...base, result: 'detected', detail: `${err.code} (unnamed file: ${c.unnamedBecause})` };
    if (!mentions) return { ...base, result: 'wrong-file', detail: `${err.code}: ${err.message}` };
    return {
      ...base,
      result: 'detected',
      detail: `${err.code}${(err as { page?: number }).page === undefined ? '' : ` page ${(err as { page?: number }).page}`}`,
    };
  } finally {
    await store?.close({ flush: false }).catch(() => undefined);
  }
}
