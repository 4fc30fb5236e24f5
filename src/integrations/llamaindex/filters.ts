import type { MetadataFilter, MetadataFilters } from '@llamaindex/core/vector-store';
import { InvalidArgumentError } from '../../errors.js';

/** A compiled record test over a node's flat metadata. */
export type NodePredicate = (metadata: Record<string, unknown>) => boolean;

type Scalar = string | number;

/**
 * Compiles LlamaIndex `MetadataFilters` (every operator of FilterOperator,
 * AND/OR) into a predicate with the semantics of LlamaIndex's own
 * SimpleVectorStore: a filter on a key the node lacks fails, except
 * `is_empty`, which holds for a missing, null, empty string or empty array
 * value. Only the metadata's own properties are looked at (never inherited
 * ones such as `constructor`). Malformed filters are an InvalidArgumentError
 * up front, not an exception in the middle of a search.
 */
export function compileMetadataFilters(filters: unknown): NodePredicate | undefined {
  if (filters === undefined || filters === null) return undefined;
  if (typeof filters !== 'object' || !Array.isArray((filters as MetadataFilters).filters)) {
    throw new InvalidArgumentError('"filters" expected MetadataFilters ({ filters: MetadataFilter[], condition? })');
  }
  const { filters: list, condition = 'and' } = filters as MetadataFilters;
  if (condition !== 'and' && condition !== 'or')
    throw new InvalidArgumentError(`"filters.condition" expected "and" or "or", got "${String(condition).slice(0, 32)}"`);
  const tests = list.map((f, i) => compileOne(f, i));
  if (tests.length === 0) return undefined;
  return condition === 'and' ? (m) => tests.every((t) => t(m)) : (m) => tests.some((t) => t(m));
}

function own(m: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(m, key) ? m[key] : undefined;
}

function scalarOf(f: MetadataFilter, i: number): Scalar {
  if (typeof f.value === 'string' || (typeof f.value === 'number' && Number.isFinite(f.value))) return f.value;
  throw new InvalidArgumentError(`filters[${i}] ("${f.operator}") expected a string or a finite number as its value`);
}

function arrayOf(f: MetadataFilter, i: number): Scalar[] {
  const v: unknown = f.value;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))) return v as Scalar[];
  throw new InvalidArgumentError(`filters[${i}] ("${f.operator}") expected an array of strings or numbers as its value`);
}

function compileOne(f: MetadataFilter, i: number): NodePredicate {
  if (f === null || typeof f !== 'object' || typeof f.key !== 'string' || f.key.length === 0) {
    throw new InvalidArgumentError(`filters[${i}] expected { key, value, operator } with a non-empty key`);
  }
  const key = f.key;
  const present =
    (t: (v: unknown) => boolean): NodePredicate =>
    (m) => {
      const v = own(m, key);
      return v !== undefined && t(v);
    };
  switch (f.operator) {
    case '==': {
      const x = scalarOf(f, i);
      return present((v) => v === x);
    }
    case '!=': {
      const x = scalarOf(f, i);
      return present((v) => v !== x);
    }
    case '>':
    case '<':
    case '>=':
    case '<=': {
      const x = scalarOf(f, i);
      const op = f.operator;
      // Only like with like: a string never compares with a number.
      return present(
        (v) =>
          typeof v === typeof x &&
          (op === '>' ? (v as Scalar) > x : op === '<' ? (v as Scalar) < x : op === '>=' ? (v as Scalar) >= x : (v as Scalar) <= x),
      );
    }
    case 'in': {
      const set = new Set<unknown>(arrayOf(f, i));
      return present((v) => set.has(v));
    }
    case 'nin': {
      const set = new Set<unknown>(arrayOf(f, i));
      return present((v) => !set.has(v));
    }
    case 'any': {
      const xs = arrayOf(f, i);
      return present((v) => Array.isArray(v) && xs.some((x) => v.includes(x)));
    }
    case 'all': {
      const xs = arrayOf(f, i);
      return present((v) => Array.isArray(v) && xs.every((x) => v.includes(x)));
    }
    case 'contains': {
      const x = scalarOf(f, i);
      return present((v) => Array.isArray(v) && v.includes(x));
    }
    case 'text_match': {
      const x = String(scalarOf(f, i));
      return present((v) => typeof v === 'string' && v.includes(x));
    }
    case 'is_empty':
      return (m) => {
        const v = own(m, key);
        return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
      };
    default:
      throw new InvalidArgumentError(`filters[${i}] has unknown operator "${String(f.operator).slice(0, 32)}"`);
  }
}
