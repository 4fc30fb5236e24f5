import { isDeepStrictEqual } from 'node:util';
import type { Store } from '../../../src/index.js';

/**
 * The parent's picture of what a store must hold: every acknowledged write,
 * per collection, and the operations that were in flight when the writer died
 * (each of which must be found either whole or not at all).
 */

export type RecordValue = { vector: number[]; metadata: unknown };
export type CollectionModel = Map<string, RecordValue>;
export type StoreModel = Map<string, CollectionModel>;

export type WireOp =
  | { t: 'u'; c: string; r: [string, number[], unknown][] }
  | { t: 'd'; c: string; ids: string[] }
  | { t: 'f' | 'c' | 'r' | 'x'; c: string }
  | { t: 'k' };

export interface ChildLog {
  ready: boolean;
  done: boolean;
  ops: Map<number, WireOp>;
  /** Operation numbers in the order their acknowledgements arrived. */
  acked: number[];
  errors: { n: number; code: string; message: string }[];
}

/** Parses the writer's stdout (see writer.mjs for the protocol). */
export function parseChildLog(stdout: string): ChildLog {
  const log: ChildLog = { ready: false, done: false, ops: new Map(), acked: [], errors: [] };
  for (const line of stdout.split('\n')) {
    if (line === 'ready') log.ready = true;
    else if (line === 'done') log.done = true;
    else if (line.startsWith('b ')) {
      const sp = line.indexOf(' ', 2);
      // A line cut by the kill has no parseable JSON: that op never started its write.
      try {
        log.ops.set(Number(line.slice(2, sp)), JSON.parse(line.slice(sp + 1)) as WireOp);
      } catch {
        /* torn last line */
      }
    } else if (line.startsWith('a ')) log.acked.push(Number(line.slice(2)));
    else if (line.startsWith('e ')) {
      const [, n, code, ...rest] = line.split(' ');
      log.errors.push({ n: Number(n), code: code ?? '', message: rest.join(' ') });
    }
  }
  return log;
}

/** Applies one acknowledged operation to the model. */
export function applyToModel(model: StoreModel, op: WireOp): void {
  if (op.t !== 'u' && op.t !== 'd') return;
  const col = collectionModel(model, op.c);
  if (op.t === 'u') for (const [id, vector, metadata] of op.r) col.set(id, { vector, metadata: metadata ?? undefined });
  else for (const id of op.ids) col.delete(id);
}

export function collectionModel(model: StoreModel, name: string): CollectionModel {
  let col = model.get(name);
  if (!col) {
    col = new Map();
    model.set(name, col);
  }
  return col;
}

export interface VerifyOutcome {
  /** Acknowledged records missing, holding an older value, or deleted records back. */
  lost: number;
  /** In-flight batches found partly applied. */
  torn: number;
  /** In-flight batches found whole (durable though never acknowledged: allowed). */
  applied: number;
  /** Records that no acknowledged or in-flight write explains, and search results that disagree with the model. */
  wrong: number;
  problems: string[];
}

const same = (seen: { vector: Float32Array; metadata: unknown } | undefined, want: RecordValue | undefined): boolean => {
  if (seen === undefined || want === undefined) return seen === want;
  if (seen.vector.length !== want.vector.length) return false;
  for (let i = 0; i < want.vector.length; i++) if (seen.vector[i] !== want.vector[i]) return false;
  return isDeepStrictEqual(seen.metadata, want.metadata);
};

/**
 * Compares a reopened store with the model. In-flight operations found
 * applied are folded into the model (they are durable now and must stay).
 */
export function verifyStore(store: Store, model: StoreModel, inflight: WireOp[]): VerifyOutcome {
  const out: VerifyOutcome = { lost: 0, torn: 0, applied: 0, wrong: 0, problems: [] };
  const problem = (kind: 'lost' | 'torn' | 'wrong', text: string): void => {
    out[kind] += 1;
    if (out.problems.length < 20) out.problems.push(`${kind}: ${text}`);
  };
  for (const summary of store.listCollections()) {
    const name = summary.name;
    const col = store.collection(name);
    const want = collectionModel(model, name);
    const pendingHere = inflight.filter((op): op is Extract<WireOp, { t: 'u' | 'd' }> => (op.t === 'u' || op.t === 'd') && op.c === name);
    const judged = new Set<string>();
    for (const op of pendingHere) {
      const after = new Map<string, RecordValue | undefined>();
      if (op.t === 'u') for (const [id, vector, metadata] of op.r) after.set(id, { vector, metadata: metadata ?? undefined });
      else for (const id of op.ids) after.set(id, undefined);
      let applied = 0;
      let notApplied = 0;
      for (const [id, next] of after) {
        judged.add(id);
        const seen = col.get(id);
        const isNew = same(seen, next);
        const isOld = same(seen, want.get(id));
        if (isNew && !isOld) applied++;
        else if (isOld && !isNew) notApplied++;
        else if (!isNew && !isOld)
          problem(want.has(id) ? 'lost' : 'wrong', `${name}/${id} matches neither the acknowledged value nor the in-flight one`);
      }
      if (applied > 0 && notApplied > 0)
        problem('torn', `${name}: in-flight ${op.t} batch of ${after.size} found ${applied} applied, ${notApplied} not`);
      if (applied > 0) out.applied++;
      if (applied > 0) for (const [id, next] of after) next === undefined ? want.delete(id) : want.set(id, next);
    }
    for (const [id, value] of want) {
      if (judged.has(id)) continue;
      const seen = col.get(id);
      if (!same(seen, value)) problem('lost', `${name}/${id} ${seen === undefined ? 'missing' : 'holds another value'}`);
    }
    for (const id of col.ids()) {
      if (!want.has(id) && !judged.has(id)) problem('wrong', `${name}/${id} present but never acknowledged as live`);
    }
    if (col.count !== want.size) problem('wrong', `${name}: count ${col.count}, expected ${want.size}`);
    checkSearches(name, col, want, problem);
  }
  return out;
}

type Searchable = Pick<ReturnType<Store['collection']>, 'search'>;

/** Exact-match queries for a sample of live records; every hit must be live with its own metadata. */
function checkSearches(name: string, col: Searchable, want: CollectionModel, problem: (kind: 'wrong', text: string) => void): void {
  const entries = [...want];
  const step = Math.max(1, Math.floor(entries.length / 12));
  for (let i = 0; i < entries.length; i += step) {
    const [id, value] = entries[i] as [string, RecordValue];
    const hits = col.search(value.vector, 3);
    const top = hits[0];
    const duplicate =
      top !== undefined && top.id !== id && top.score === 0 && want.get(top.id)?.vector.every((x, j) => x === value.vector[j]);
    if (!top || (top.id !== id && !duplicate)) problem('wrong', `${name}: exact query for ${id} returned ${top?.id ?? 'nothing'}`);
    for (const h of hits) {
      const live = want.get(h.id);
      if (!live) problem('wrong', `${name}: search returned ${h.id}, which is not live`);
      else if (!isDeepStrictEqual(h.metadata, live.metadata)) problem('wrong', `${name}: search hit ${h.id} carries other metadata`);
    }
  }
  const filtered = col.search(entries[0]?.[1].vector ?? new Array<number>(8).fill(0), 10, { filter: { tag: 't1' } });
  for (const h of filtered) {
    if ((want.get(h.id)?.metadata as { tag?: string } | undefined)?.tag !== 't1')
      problem('wrong', `${name}: filtered search returned ${h.id}, which does not match`);
  }
}

/** Every DEK version the keyring holds (not destroyed) must still unwrap. Returns the ones that do not. */
export async function unwrapEveryDek(store: Store): Promise<string[]> {
  const bad: string[] = [];
  // Drop cached DEKs so each one is really unwrapped by its KEK.
  store.keys.evict();
  for (const [cid, keys] of Object.entries(store.keys.keyring.collections)) {
    for (const dek of keys.deks) {
      if (dek.state === 'destroyed') continue;
      try {
        await store.keys.withDek(cid, dek.version, () => undefined);
      } catch (err) {
        bad.push(`${cid} v${dek.version}: ${(err as { code?: string }).code ?? String(err)}`);
      }
    }
  }
  return bad;
}
