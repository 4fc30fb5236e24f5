import { InvalidArgumentError, VectorsealError } from '../errors.js';
import type { Metadata } from './metadata.js';

/**
 * Metadata filters. A filter is an object of field conditions, all of which
 * must hold (AND). A condition is a plain value (equality) or an operator
 * object: `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`,
 * `$exists`. A field name may use dots to reach nested objects. Beside the
 * fields, `$and: [filters]`, `$or: [filters]` and `$not: filter` combine
 * whole filters, at any depth. Only a record's own properties match (never
 * `constructor` or `toString` from the prototype).
 */
// Untyped metadata (a string index, or plain `object`) keeps the loose form: any field, any condition.
export type Filter<M = Metadata> = [keyof M] extends [never]
  ? Record<string, unknown>
  : string extends keyof M
    ? Record<string, unknown>
    : TypedFilter<M>;

/**
 * A filter over a declared metadata type (`createCollection<M>()`): field
 * names and their values are checked against M; dotted paths into nested
 * objects are allowed but not checked.
 */
export type TypedFilter<M> = FieldFilters<M> & {
  $and?: TypedFilter<M>[];
  $or?: TypedFilter<M>[];
  $not?: TypedFilter<M>;
};

/** A condition on one field whose values have type V. */
export type Condition<V> =
  | (V extends Scalar ? V : never)
  | {
      $eq?: V & Scalar;
      $ne?: V & Scalar;
      $in?: (V & Scalar)[];
      $nin?: (V & Scalar)[];
      $gt?: V & (number | string);
      $gte?: V & (number | string);
      $lt?: V & (number | string);
      $lte?: V & (number | string);
      $exists?: boolean;
    };

type FieldFilters<M> = { [K in keyof M & string]?: Condition<NonNullable<M[K]>> | (undefined extends M[K] ? Condition<null> : never) } & {
  /** A dotted path into nested objects ("a.b"): not checked against M. */
  [path: `${string}.${string}`]: Condition<Scalar> | undefined;
};

export type Predicate = (metadata: Metadata | undefined) => boolean;

type Scalar = string | number | boolean | null;
const OPS = new Set(['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists']);
const MAX_FILTER_DEPTH = 32;

/** Whether a filter may compare against `v` (finite numbers, strings, booleans, null). */
export function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/** The value at a dotted path of a record's metadata as filters see it (own properties only, never through an array). */
export function fieldValue(meta: Metadata | undefined, path: string[]): unknown {
  let v: unknown = meta;
  for (const p of path) {
    // Own properties only: "constructor" or "toString" must not match every record through the prototype.
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

function compare(a: unknown, b: Scalar, op: string): boolean {
  if (typeof a !== typeof b || (typeof a !== 'number' && typeof a !== 'string')) return false;
  const x = a as number | string;
  const y = b as number | string;
  switch (op) {
    case '$gt':
      return x > y;
    case '$gte':
      return x >= y;
    case '$lt':
      return x < y;
    default:
      return x <= y;
  }
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * A filter read once: `tree` is a plain copy of the caller's filter (own
 * enumerable string keys only, null-prototype objects, arrays copied, all
 * frozen), already validated, and `test` its compiled predicate. The planner
 * (filter-plan.ts) and the predicate both read `tree`, never the caller's
 * object, so a getter or Proxy that answers differently on each read cannot
 * make the plan and the test disagree.
 */
export interface ReadFilter {
  readonly tree: Readonly<Record<string, unknown>>;
  readonly test: Predicate;
}

/**
 * Reads and validates a filter; InvalidArgumentError on a malformed one.
 * The caller's object is read once, here: anything reading it throws (a
 * getter, a Proxy trap) becomes an InvalidArgumentError too, with the
 * thrown value as its cause.
 */
export function readFilter(filter: unknown): ReadFilter {
  let tree: Record<string, unknown>;
  try {
    tree = copyFilter(filter, 'filter', 0);
  } catch (err) {
    if (err instanceof VectorsealError) throw err;
    throw new InvalidArgumentError('"filter" could not be read as plain data', { cause: err });
  }
  return Object.freeze({ tree, test: compile(tree, 'filter', 0) });
}

/** Compiles a filter into a predicate (see {@link readFilter}, which also keeps the copy a planner reads). */
export function compileFilter(filter: unknown): Predicate {
  return readFilter(filter).test;
}

/** A frozen, null-prototype object with `entries` as own data properties (`__proto__` included, as data). */
function frozenRecord(entries: [string, unknown][]): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true });
  return Object.freeze(out);
}

/** Each own enumerable string-keyed property of `o`, read once. */
function ownEntries(o: object): [string, unknown][] {
  return Object.entries(o);
}

/** A frozen copy of an array's elements, each read once. */
function copyArray(a: readonly unknown[]): readonly unknown[] {
  const n = a.length;
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push(a[i]);
  return Object.freeze(out);
}

/**
 * The plain copy of a filter node. Only the shape a filter can have is
 * copied ($and/$or arrays of filters, $not's filter, operator objects and
 * their `$in`/`$nin` arrays); anything else is kept as read, and compile
 * rejects it by its type without reading into it.
 */
function copyFilter(filter: unknown, at: string, depth: number): Record<string, unknown> {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new InvalidArgumentError(`"${at}" expected an object of field conditions, got ${describe(filter)}`);
  }
  if (depth > MAX_FILTER_DEPTH) throw new InvalidArgumentError(`"filter" nests $and/$or/$not deeper than ${MAX_FILTER_DEPTH} levels`);
  const out: [string, unknown][] = [];
  for (const [field, cond] of ownEntries(filter)) {
    if ((field === '$and' || field === '$or') && Array.isArray(cond)) {
      out.push([field, Object.freeze(copyArray(cond).map((f, i) => copyFilter(f, `${at}.${field}[${i}]`, depth + 1)))]);
    } else if (field === '$not') {
      out.push([field, copyFilter(cond, `${at}.$not`, depth + 1)]);
    } else if (!field.startsWith('$') && cond !== null && typeof cond === 'object' && !Array.isArray(cond)) {
      out.push([field, frozenRecord(ownEntries(cond).map(([op, arg]) => [op, Array.isArray(arg) ? copyArray(arg) : arg]))]);
    } else {
      out.push([field, cond]);
    }
  }
  return frozenRecord(out);
}

function compile(filter: unknown, at: string, depth: number): Predicate {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new InvalidArgumentError(`"${at}" expected an object of field conditions, got ${describe(filter)}`);
  }
  if (depth > MAX_FILTER_DEPTH) throw new InvalidArgumentError(`"filter" nests $and/$or/$not deeper than ${MAX_FILTER_DEPTH} levels`);
  const tests: Predicate[] = [];
  for (const [field, cond] of Object.entries(filter)) {
    if (field === '$and' || field === '$or') {
      if (!Array.isArray(cond) || cond.length === 0)
        throw new InvalidArgumentError(`"${at}.${field}" expected a non-empty array of filters`);
      const parts = cond.map((f, i) => compile(f, `${at}.${field}[${i}]`, depth + 1));
      tests.push(field === '$and' ? (m) => parts.every((p) => p(m)) : (m) => parts.some((p) => p(m)));
      continue;
    }
    if (field === '$not') {
      const inner = compile(cond, `${at}.$not`, depth + 1);
      tests.push((m) => !inner(m));
      continue;
    }
    if (field.length === 0 || field.startsWith('$')) {
      throw new InvalidArgumentError(
        `"${at}" field names must be non-empty and not start with "$" (beside $and, $or, $not), got "${field.slice(0, 64)}"`,
      );
    }
    const path = field.split('.');
    if (isScalar(cond)) {
      tests.push((m) => fieldValue(m, path) === cond);
      continue;
    }
    if (cond === null || typeof cond !== 'object' || Array.isArray(cond)) {
      throw new InvalidArgumentError(`"${at}.${field}" expected a string, number, boolean, null or operator object`);
    }
    const ops = Object.entries(cond);
    // An operator object with no operator would match every record: almost certainly a filter built wrong.
    if (ops.length === 0) {
      throw new InvalidArgumentError(
        `"${at}.${field}" is an operator object with no operator (expected at least one of ${[...OPS].join(', ')})`,
      );
    }
    for (const [op, arg] of ops) {
      if (!OPS.has(op))
        throw new InvalidArgumentError(`"${at}.${field}" has unknown operator "${op}" (expected one of ${[...OPS].join(', ')})`);
      if (op === '$in' || op === '$nin') {
        if (!Array.isArray(arg) || !arg.every(isScalar))
          throw new InvalidArgumentError(`"${at}.${field}.${op}" expected an array of scalars`);
        const set = new Set<unknown>(arg);
        tests.push(op === '$in' ? (m) => set.has(fieldValue(m, path)) : (m) => !set.has(fieldValue(m, path)));
      } else if (op === '$exists') {
        if (typeof arg !== 'boolean') throw new InvalidArgumentError(`"${at}.${field}.$exists" expected a boolean`);
        tests.push((m) => (fieldValue(m, path) !== undefined) === arg);
      } else {
        if (!isScalar(arg)) throw new InvalidArgumentError(`"${at}.${field}.${op}" expected a scalar`);
        if (op === '$eq') tests.push((m) => fieldValue(m, path) === arg);
        else if (op === '$ne') tests.push((m) => fieldValue(m, path) !== arg);
        else tests.push((m) => compare(fieldValue(m, path), arg, op));
      }
    }
  }
  return (m) => tests.every((t) => t(m));
}
