import { isScalar } from './filter.js';

/**
 * The part of a metadata filter a metadata index can answer: conditions that
 * every matching record must meet and that name the exact values a field
 * may take (plain equality, `$eq`, `$in`), found at the top level or inside
 * `$and`. Anything else (`$or`, `$not`, ranges, `$ne`, a `where` predicate)
 * is left to the full filter, which still tests every candidate: the index
 * only narrows the records to look at, it never decides a match.
 */
export interface EqualityCondition {
  /** The field's dotted path, split. */
  path: string[];
  /** The field's key in a metadata index (the dotted path as written). */
  field: string;
  /** Values the field must hold one of (own-property scalars, compared as `===` compares them). */
  values: unknown[];
}

const MAX_DEPTH = 32;

/**
 * Equality conditions implied by `filter`, which must be the `tree` of
 * readFilter (well formed, and read once: the predicate was compiled from
 * the same copy); an empty list when none is.
 */
export function equalityConditions(filter: unknown): EqualityCondition[] {
  const out: EqualityCondition[] = [];
  collect(filter, out, 0);
  return out;
}

function collect(filter: unknown, out: EqualityCondition[], depth: number): void {
  if (depth > MAX_DEPTH || filter === null || typeof filter !== 'object' || Array.isArray(filter)) return;
  for (const [field, cond] of Object.entries(filter)) {
    if (field === '$and') {
      if (Array.isArray(cond)) for (const f of cond) collect(f, out, depth + 1);
      continue;
    }
    // A disjunction or negation implies no single field's value.
    if (field.startsWith('$')) continue;
    if (isScalar(cond)) {
      out.push({ path: field.split('.'), field, values: [cond] });
      continue;
    }
    if (cond === null || typeof cond !== 'object' || Array.isArray(cond)) continue;
    const ops = cond as Record<string, unknown>;
    if (Object.hasOwn(ops, '$eq') && isScalar(ops.$eq)) out.push({ path: field.split('.'), field, values: [ops.$eq] });
    if (Object.hasOwn(ops, '$in') && Array.isArray(ops.$in)) out.push({ path: field.split('.'), field, values: [...new Set(ops.$in)] });
  }
}

/**
 * Whether `filter` (readFilter's `tree`, so well formed) is nothing but
 * equality conditions (plain values, `$eq`, `$in`, within `$and`): then a
 * record matches exactly when it meets every condition
 * {@link equalityConditions} returns, and a metadata index's postings decide
 * the filter without running it.
 */
export function onlyEquality(filter: unknown): boolean {
  return equalityOnly(filter, 0);
}

function equalityOnly(filter: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || filter === null || typeof filter !== 'object' || Array.isArray(filter)) return false;
  for (const [field, cond] of Object.entries(filter)) {
    if (field === '$and') {
      if (!Array.isArray(cond) || !cond.every((f) => equalityOnly(f, depth + 1))) return false;
      continue;
    }
    if (field.startsWith('$')) return false;
    if (isScalar(cond)) continue;
    if (cond === null || typeof cond !== 'object' || Array.isArray(cond)) return false;
    const ops = Object.keys(cond);
    if (ops.length !== 1) return false;
    const arg = (cond as Record<string, unknown>)[ops[0] as string];
    if (ops[0] === '$eq' ? !isScalar(arg) : ops[0] !== '$in' || !Array.isArray(arg)) return false;
  }
  return true;
}
