import { InvalidArgumentError } from '../errors.js';
import type { Metadata } from './metadata.js';

/**
 * Metadata filters. A filter is an object of field conditions, all of which
 * must hold (AND). A condition is a plain value (equality) or an operator
 * object: `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`,
 * `$exists`. A field name may use dots to reach nested objects.
 */
export type Filter = Record<string, unknown>;
export type Predicate = (metadata: Metadata | undefined) => boolean;

type Scalar = string | number | boolean | null;
const OPS = new Set(['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists']);

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

function get(meta: Metadata | undefined, path: string[]): unknown {
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

/** Compiles a filter into a predicate; InvalidArgumentError on a malformed one. */
export function compileFilter(filter: unknown): Predicate {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new InvalidArgumentError(`"filter" expected an object of field conditions, got ${filter === null ? 'null' : Array.isArray(filter) ? 'an array' : typeof filter}`);
  }
  const tests: Predicate[] = [];
  for (const [field, cond] of Object.entries(filter)) {
    if (field.length === 0 || field.startsWith('$')) throw new InvalidArgumentError(`"filter" field names must be non-empty and not start with "$", got "${field}"`);
    const path = field.split('.');
    if (isScalar(cond)) {
      tests.push((m) => get(m, path) === cond);
      continue;
    }
    if (cond === null || typeof cond !== 'object' || Array.isArray(cond)) {
      throw new InvalidArgumentError(`"filter.${field}" expected a string, number, boolean, null or operator object`);
    }
    for (const [op, arg] of Object.entries(cond)) {
      if (!OPS.has(op)) throw new InvalidArgumentError(`"filter.${field}" has unknown operator "${op}" (expected one of ${[...OPS].join(', ')})`);
      if (op === '$in' || op === '$nin') {
        if (!Array.isArray(arg) || !arg.every(isScalar)) throw new InvalidArgumentError(`"filter.${field}.${op}" expected an array of scalars`);
        const set = new Set<unknown>(arg);
        tests.push(op === '$in' ? (m) => set.has(get(m, path)) : (m) => !set.has(get(m, path)));
      } else if (op === '$exists') {
        if (typeof arg !== 'boolean') throw new InvalidArgumentError(`"filter.${field}.$exists" expected a boolean`);
        tests.push((m) => (get(m, path) !== undefined) === arg);
      } else {
        if (!isScalar(arg)) throw new InvalidArgumentError(`"filter.${field}.${op}" expected a scalar`);
        if (op === '$eq') tests.push((m) => get(m, path) === arg);
        else if (op === '$ne') tests.push((m) => get(m, path) !== arg);
        else tests.push((m) => compare(get(m, path), arg, op));
      }
    }
  }
  return (m) => tests.every((t) => t(m));
}
