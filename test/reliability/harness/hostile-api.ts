import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { VectorsealError, openStore, type Store } from '../../../src/index.js';

/**
 * Hostile input on the public API: every call with a random wrong argument
 * must either succeed or throw a typed VectorsealError, and a reopen must
 * return exactly what was stored (inputs that were accepted included).
 */

export interface HostileReport {
  tried: number;
  rejected: number;
  accepted: number;
  untyped: number;
  damaged: number;
  codes: Record<string, number>;
  failures: string[];
  wrongResults: number;
}

class Odd {
  x = 1;
}

const DIM = 4;

function hostileValue(): fc.Arbitrary<unknown> {
  const cyclic = (): unknown => {
    const o: Record<string, unknown> = { a: 1 };
    o['self'] = o;
    return o;
  };
  const deep = (n: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < n; i++) v = { d: v };
    return v;
  };
  return fc.oneof(
    fc.constantFrom<unknown>(
      undefined,
      null,
      NaN,
      Infinity,
      -Infinity,
      -0,
      0,
      '',
      'x'.repeat(70_000),
      () => 1,
      Symbol('s'),
      10n,
      new Odd(),
      new Date(0),
      new Map([[1, 2]]),
      /re/,
    ),
    fc.constant(null).map(cyclic),
    fc.integer({ min: 1, max: 5000 }).map(deep),
    fc.constant(null).map(() => ({ big: 'y'.repeat(2_000_000) })),
    fc.array(fc.double(), { maxLength: 8 }),
    fc.float32Array({ maxLength: 8 }),
    fc.string(),
    fc.object(),
    fc.anything(),
  );
}

function hostileVector(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.array(fc.oneof(fc.double(), fc.constantFrom(NaN, Infinity, -Infinity)), { minLength: 0, maxLength: 9 }),
    fc.constantFrom<unknown>(
      new Float32Array(DIM).fill(NaN),
      new Float32Array(DIM).fill(Infinity),
      new Float64Array(DIM),
      [1, 2, 3, '4'],
      'abcd',
      null,
      {},
      new Float32Array(0),
    ),
    hostileValue(),
  );
}

const call = fc.oneof(
  fc.record({
    op: fc.constant('upsert'),
    id: fc.oneof(fc.string({ maxLength: 20 }), hostileValue()),
    vector: hostileVector(),
    metadata: fc.oneof(fc.constant(undefined), hostileValue(), fc.jsonValue()),
  }),
  fc.record({ op: fc.constant('upsertMany'), records: fc.oneof(fc.array(fc.anything(), { maxLength: 4 }), hostileValue()) }),
  fc.record({ op: fc.constant('delete'), ids: fc.oneof(fc.array(hostileValue(), { maxLength: 3 }), hostileValue()) }),
  fc.record({
    op: fc.constant('search'),
    vector: hostileVector(),
    k: fc.oneof(fc.integer({ min: -5, max: 20_000 }), hostileValue()),
    options: fc.oneof(
      fc.constant(undefined),
      fc.record({ filter: hostileValue(), ef: hostileValue() }, { requiredKeys: [] }),
      hostileValue(),
    ),
  }),
  fc.record({ op: fc.constant('get'), id: hostileValue() }),
  fc.record({
    op: fc.constant('createCollection'),
    name: fc.oneof(fc.string({ maxLength: 10 }), hostileValue()),
    options: fc.oneof(fc.record({ dim: hostileValue(), space: hostileValue(), M: hostileValue() }, { requiredKeys: [] }), hostileValue()),
  }),
  fc.record({ op: fc.constant('collection'), name: hostileValue() }),
);

type Call = { op: string; [k: string]: unknown };

async function apply(store: Store, c: Call): Promise<void> {
  const col = store.collection('h') as unknown as Record<string, (...a: unknown[]) => unknown>;
  const s = store as unknown as Record<string, (...a: unknown[]) => unknown>;
  switch (c.op) {
    case 'upsert':
      await col['upsert']!.call(
        col,
        c['metadata'] === undefined ? { id: c['id'], vector: c['vector'] } : { id: c['id'], vector: c['vector'], metadata: c['metadata'] },
      );
      return;
    case 'upsertMany':
      await col['upsert']!.call(col, c['records']);
      return;
    case 'delete':
      await col['delete']!.call(col, c['ids']);
      return;
    case 'search':
      col['search']!.call(col, c['vector'], c['k'], c['options']);
      return;
    case 'get':
      col['get']!.call(col, c['id']);
      return;
    case 'createCollection':
      await s['createCollection']!.call(store, c['name'], c['options']);
      return;
    default:
      s['collection']!.call(store, c['name']);
  }
}

/** Snapshot of every record of every collection. */
function snapshot(store: Store): Map<string, Map<string, unknown>> {
  const out = new Map<string, Map<string, unknown>>();
  for (const { name } of store.listCollections()) {
    const col = store.collection(name);
    out.set(name, new Map(col.ids().map((id) => [id, { ...col.get(id), vector: Array.from(col.get(id)?.vector ?? []) }])));
  }
  return out;
}

export async function runHostileApi(options: { dir: string; keyDir: string; runs: number; seed: number }): Promise<HostileReport> {
  const report: HostileReport = { tried: 0, rejected: 0, accepted: 0, untyped: 0, damaged: 0, codes: {}, failures: [], wrongResults: 0 };
  const open = () => openStore({ dir: options.dir, create: true, keys: { provider: 'local', keyDir: options.keyDir } });
  let store = await open();
  const h = await store.createCollection('h', { dim: DIM });
  await h.upsert([
    { id: 'keep-1', vector: [1, 2, 3, 4], metadata: { k: 1 } },
    { id: 'keep-2', vector: [4, 3, 2, 1] },
  ]);
  await h.flush();
  await fc.assert(
    fc.asyncProperty(call, async (c) => {
      report.tried++;
      try {
        await apply(store, c as Call);
        report.accepted++;
      } catch (err) {
        if (err instanceof VectorsealError) {
          report.rejected++;
          report.codes[err.code] = (report.codes[err.code] ?? 0) + 1;
        } else {
          report.untyped++;
          if (report.failures.length < 20)
            report.failures.push(`${c.op}: ${(err as Error)?.name}: ${String((err as Error)?.message).slice(0, 200)}`);
        }
      }
      return true;
    }),
    { numRuns: options.runs, seed: options.seed },
  );
  // Undamaged: whatever the store holds now (accepted inputs included) survives a flush-less close and a reopen.
  const before = snapshot(store);
  await store.close({ flush: false });
  store = await open();
  const after = snapshot(store);
  if (!isDeepStrictEqual(before, after)) {
    report.damaged++;
    report.failures.push('the reopened store differs from what it held before the close');
  }
  const keep = store.collection('h').get('keep-1');
  if (!keep || !isDeepStrictEqual(Array.from(keep.vector), [1, 2, 3, 4])) {
    report.wrongResults++;
    report.failures.push('keep-1 lost or changed');
  }
  await store.close();
  return report;
}
