import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { compileFilter, fieldValue, isScalar, readFilter } from '../../src/store/filter.js';
import { equalityConditions, onlyEquality } from '../../src/store/filter-plan.js';
import { openTestStore, storeDirs } from '../helpers/store.js';
import type { Metadata } from '../../src/store/metadata.js';

/**
 * Unit tests of the metadata filter language (src/store/filter.ts): every
 * operator, the errors a malformed filter gets, and strange valid input on
 * both sides (own `__proto__` keys, -0, lone surrogates, inherited
 * properties, getters, arrays). Search and the metadata index are tested
 * through the store in search-where.test.ts and filtered-search.test.ts.
 */

/** The labels of `records` the filter accepts. */
function matches(filter: unknown, records: Record<string, Metadata | undefined>): string[] {
  const accept = compileFilter(filter);
  return Object.entries(records)
    .filter(([, m]) => accept(m))
    .map(([k]) => k);
}

/** The InvalidArgumentError compileFilter throws for `filter`. */
function refusal(filter: unknown): InvalidArgumentError {
  let caught: unknown;
  try {
    compileFilter(filter);
  } catch (err) {
    caught = err;
  }
  expect(caught, 'compileFilter should refuse the filter').toBeInstanceOf(InvalidArgumentError);
  expect((caught as InvalidArgumentError).code).toBe('VS_INVALID_ARGUMENT');
  return caught as InvalidArgumentError;
}

const people: Record<string, Metadata | undefined> = {
  ada: { name: 'ada', age: 36, lang: 'en', admin: true, team: { name: 'core', size: 4 } },
  bo: { name: 'bo', age: 17, lang: 'sv', admin: false, team: { name: 'docs', size: 2 } },
  cy: { name: 'cy', age: 52, lang: 'en', admin: false, nick: null },
  dee: { name: 'dee', age: '52', tags: ['en', 'sv'] },
  none: undefined,
};

describe('compileFilter: the operators', () => {
  it('a plain value and $eq test equality; several fields must all hold', () => {
    expect(matches({ lang: 'en' }, people)).toEqual(['ada', 'cy']);
    expect(matches({ lang: { $eq: 'en' } }, people)).toEqual(['ada', 'cy']);
    expect(matches({ lang: 'en', admin: false }, people)).toEqual(['cy']);
    expect(matches({ age: 52 }, people)).toEqual(['cy']); // '52' is a string: no type coercion
    expect(matches({ age: '52' }, people)).toEqual(['dee']);
    expect(matches({ admin: true }, people)).toEqual(['ada']);
    expect(matches({ nick: null }, people)).toEqual(['cy']); // null equals only null, not a missing field
  });

  it('an empty filter accepts every record, also one without metadata', () => {
    expect(matches({}, people)).toEqual(['ada', 'bo', 'cy', 'dee', 'none']);
  });

  it('$ne and $nin accept records without the field; $in and $nin compare against a set', () => {
    expect(matches({ lang: { $ne: 'en' } }, people)).toEqual(['bo', 'dee', 'none']);
    expect(matches({ lang: { $in: ['sv', 'de'] } }, people)).toEqual(['bo']);
    expect(matches({ lang: { $nin: ['en'] } }, people)).toEqual(['bo', 'dee', 'none']);
    expect(matches({ lang: { $in: [] } }, people)).toEqual([]);
    expect(matches({ lang: { $nin: [] } }, people)).toEqual(['ada', 'bo', 'cy', 'dee', 'none']);
    expect(matches({ nick: { $in: [null] } }, people)).toEqual(['cy']);
  });

  it('$gt, $gte, $lt, $lte compare numbers with numbers and strings with strings, never across types', () => {
    expect(matches({ age: { $gt: 36 } }, people)).toEqual(['cy']);
    expect(matches({ age: { $gte: 36 } }, people)).toEqual(['ada', 'cy']);
    expect(matches({ age: { $lt: 36 } }, people)).toEqual(['bo']);
    expect(matches({ age: { $lte: 36 } }, people)).toEqual(['ada', 'bo']);
    expect(matches({ age: { $gte: '0' } }, people)).toEqual(['dee']);
    expect(matches({ name: { $gt: 'bo' } }, people)).toEqual(['cy', 'dee']);
    expect(matches({ age: { $gt: 17, $lt: 52 } }, people)).toEqual(['ada']); // operators on one field: all hold
    // Booleans and null are scalars (so allowed) but have no order: a range on them accepts nothing.
    expect(matches({ admin: { $gte: false } }, people)).toEqual([]);
    expect(matches({ nick: { $lte: null } }, people)).toEqual([]);
  });

  it('strings order by UTF-16 code units, as JavaScript compares them', () => {
    const records = { a: { s: 'Z' }, b: { s: 'a' }, c: { s: '\u{1F600}' }, d: { s: '\uFFFD' } };
    expect(matches({ s: { $gt: 'Z' } }, records)).toEqual(['b', 'c', 'd']);
    // U+1F600 is the pair D83D DE00, which sorts below U+FFFD.
    expect(matches({ s: { $lt: '\uFFFD', $gt: 'a' } }, records)).toEqual(['c']);
  });

  it('$exists tells a missing field (or metadata) from one that is present, null included', () => {
    expect(matches({ nick: { $exists: true } }, people)).toEqual(['cy']);
    expect(matches({ team: { $exists: false } }, people)).toEqual(['cy', 'dee', 'none']);
  });

  it('dotted paths reach nested objects, never into arrays', () => {
    expect(matches({ 'team.name': 'core' }, people)).toEqual(['ada']);
    expect(matches({ 'team.size': { $gte: 2 } }, people)).toEqual(['ada', 'bo']);
    expect(matches({ 'team.name': { $exists: false } }, people)).toEqual(['cy', 'dee', 'none']);
    expect(matches({ 'tags.0': 'en' }, people)).toEqual([]);
    expect(matches({ 'tags.length': 2 }, people)).toEqual([]);
    expect(matches({ 'name.length': 3 }, people)).toEqual([]); // a string has no fields either
    // A field whose name holds the dot cannot be reached: the path splits.
    expect(matches({ 'a.b': 1 }, { flat: { 'a.b': 1 }, nested: { a: { b: 1 } } })).toEqual(['nested']);
  });

  it('an array or object value never equals a scalar: no membership test, no deep equality', () => {
    expect(matches({ tags: 'en' }, people)).toEqual([]);
    expect(matches({ tags: { $in: ['en', 'sv'] } }, people)).toEqual([]);
    expect(matches({ team: { $exists: true, $ne: 'core' } }, people)).toEqual(['ada', 'bo']);
  });

  it('$and, $or and $not combine whole filters at any depth', () => {
    expect(matches({ $or: [{ lang: 'sv' }, { age: { $gt: 50 } }] }, people)).toEqual(['bo', 'cy']);
    expect(matches({ $and: [{ lang: 'en' }, { admin: true }] }, people)).toEqual(['ada']);
    expect(matches({ $not: { lang: 'en' } }, people)).toEqual(['bo', 'dee', 'none']);
    expect(matches({ lang: 'en', $not: { admin: true } }, people)).toEqual(['cy']);
    expect(matches({ $not: {} }, people)).toEqual([]);
    const nested = { $or: [{ $and: [{ lang: 'en' }, { $not: { age: { $lt: 40 } } }] }, { 'team.name': 'docs' }] };
    expect(matches(nested, people)).toEqual(['bo', 'cy']);
  });

  it('nesting is limited to 32 levels of $and/$or/$not, so a cyclic filter is refused instead of overflowing the stack', () => {
    let exact: Record<string, unknown> = { lang: 'en' };
    for (let i = 0; i < 32; i++) exact = { $and: [exact] };
    expect(matches(exact, people)).toEqual(['ada', 'cy']);
    expect(refusal({ $or: [exact] }).message).toMatch(/deeper than 32 levels/);
    const cyclic: Record<string, unknown> = {};
    cyclic['$not'] = cyclic;
    expect(refusal(cyclic).message).toMatch(/deeper than 32 levels/);
    const wide: Record<string, unknown> = { $and: [] };
    (wide['$and'] as unknown[]).push(wide);
    expect(refusal(wide).message).toMatch(/deeper than 32 levels/);
  });

  it('the predicate holds what the filter said when compiled: later changes to the filter object do not reach it', () => {
    const values = ['en'];
    const filter = { lang: { $in: values }, admin: false };
    const accept = compileFilter(filter);
    values.push('sv');
    filter.admin = true;
    expect(Object.keys(people).filter((k) => accept(people[k]))).toEqual(['cy']);
  });
});

describe('compileFilter: malformed filters get VS_INVALID_ARGUMENT naming the place', () => {
  it('the filter and every combined part must be a plain object of conditions', () => {
    for (const bad of [null, undefined, 'lang', 3, true, [], [{ lang: 'en' }]]) {
      expect(refusal(bad).message).toMatch(/^"filter" expected an object of field conditions, got /);
    }
    expect(refusal({ $not: [] }).message).toBe('"filter.$not" expected an object of field conditions, got an array');
    expect(refusal({ $or: [{ a: 1 }, 'b'] }).message).toBe('"filter.$or[1]" expected an object of field conditions, got string');
  });

  it('$and and $or take a non-empty array', () => {
    for (const bad of [[], {}, { a: 1 }, 'x', null]) {
      expect(refusal({ $and: bad }).message).toBe('"filter.$and" expected a non-empty array of filters');
      expect(refusal({ $or: bad }).message).toBe('"filter.$or" expected a non-empty array of filters');
    }
  });

  it('field names are non-empty and do not start with "$"; unknown operators are named', () => {
    expect(refusal({ '': 1 }).message).toMatch(/field names must be non-empty/);
    expect(refusal({ $where: 'x' }).message).toMatch(/got "\$where"/);
    expect(refusal({ $nor: [{ a: 1 }] }).message).toMatch(/got "\$nor"/);
    expect(refusal({ a: { $regex: 'x' } }).message).toMatch(/unknown operator "\$regex"/);
    expect(refusal({ a: { $eq: 1, $size: 2 } }).message).toMatch(/unknown operator "\$size"/);
    // A long field name is cut in the message.
    expect(refusal({ [`$${'x'.repeat(500)}`]: 1 }).message.length).toBeLessThan(200);
  });

  it('a condition is a finite scalar or an operator object: NaN, Infinity, arrays, functions, bigints and symbols are refused', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, ['en'], () => true, 1n, Symbol('x')]) {
      expect(refusal({ lang: bad }).message).toBe('"filter.lang" expected a string, number, boolean, null or operator object');
    }
  });

  it('operator arguments have their types: scalars, arrays of scalars, a boolean for $exists', () => {
    for (const op of ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, [1], { a: 1 }, undefined]) {
        expect(refusal({ a: { [op]: bad } }).message).toBe(`"filter.a.${op}" expected a scalar`);
      }
    }
    for (const op of ['$in', '$nin']) {
      for (const bad of ['en', 1, null, { 0: 'en' }, [Number.NaN], [['en']], [{ a: 1 }], [undefined]]) {
        expect(refusal({ a: { [op]: bad } }).message).toBe(`"filter.a.${op}" expected an array of scalars`);
      }
    }
    for (const bad of [1, 0, 'true', null, undefined]) {
      expect(refusal({ a: { $exists: bad } }).message).toBe('"filter.a.$exists" expected a boolean');
    }
  });

  it('messages name fields and operators, never the values the filter compares with', () => {
    const secret = 'PLAINTEXT-CANARY-7f3a';
    const filters: unknown[] = [
      { a: { $gt: { x: secret } } },
      { a: { $in: [secret, [secret]] } },
      { a: { $exists: secret } },
      { a: [secret] },
      { $or: [{ a: secret }, secret] },
      { $and: secret },
      { $not: secret },
    ];
    for (const f of filters) expect(refusal(f).message).not.toContain(secret);
  });
});

describe('compileFilter and fieldValue: strange valid input', () => {
  it("only a record's own properties match: nothing from Object.prototype, nothing inherited", () => {
    const inherited = Object.create({ lang: 'en', team: { name: 'core' } }) as Metadata;
    const records = { plain: {}, inherited, none: undefined };
    for (const field of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'lang', 'team.name', 'team']) {
      expect(matches({ [field]: { $exists: true } }, records), field).toEqual([]);
      expect(matches({ [field]: { $exists: false } }, records), field).toEqual(['plain', 'inherited', 'none']);
    }
    expect(matches({ 'constructor.name': 'Object' }, records)).toEqual([]);
    expect(matches({ lang: 'en' }, records)).toEqual([]);
    expect(fieldValue({ a: Object.create({ b: 1 }) as Metadata }, ['a', 'b'])).toBeUndefined();
  });

  it('an own "__proto__" key is a field like any other, on both sides, and compiling sets no prototype', () => {
    const own = JSON.parse('{"__proto__": "x", "n": {"__proto__": {"deep": 1}}}') as Metadata;
    const records = { own, plain: { n: {} }, none: undefined };
    expect(matches(JSON.parse('{"__proto__": "x"}'), records)).toEqual(['own']);
    expect(matches(JSON.parse('{"__proto__": {"$exists": true}}'), records)).toEqual(['own']);
    expect(matches(JSON.parse('{"__proto__": {"$in": ["x"]}}'), records)).toEqual(['own']);
    expect(matches({ 'n.__proto__.deep': 1 }, records)).toEqual(['own']);
    expect(matches(JSON.parse('{"$not": {"__proto__": "x"}}'), records)).toEqual(['plain', 'none']);
    expect(fieldValue(own, ['__proto__'])).toBe('x');
    // A filter written as an object literal with __proto__ sets its prototype: that condition is not a field.
    expect(matches({ __proto__: { lang: 'sv' } }, { a: { lang: 'en' } })).toEqual(['a']);
    expect(({} as Record<string, unknown>)['deep']).toBeUndefined();
  });

  it('-0 and 0 are the same value for every operator, as stored metadata keeps either', () => {
    const records = { neg: { z: -0 }, pos: { z: 0 }, one: { z: 1 } };
    for (const zero of [0, -0]) {
      expect(matches({ z: zero }, records)).toEqual(['neg', 'pos']);
      expect(matches({ z: { $eq: zero } }, records)).toEqual(['neg', 'pos']);
      expect(matches({ z: { $ne: zero } }, records)).toEqual(['one']);
      expect(matches({ z: { $in: [zero] } }, records)).toEqual(['neg', 'pos']);
      expect(matches({ z: { $nin: [zero] } }, records)).toEqual(['one']);
      expect(matches({ z: { $gt: zero } }, records)).toEqual(['one']);
      expect(matches({ z: { $gte: zero } }, records)).toEqual(['neg', 'pos', 'one']);
      expect(matches({ z: { $lt: zero } }, records)).toEqual([]);
      expect(matches({ z: { $lte: zero } }, records)).toEqual(['neg', 'pos']);
    }
  });

  it('NaN or an infinity in a record (never stored, but met by fieldValue) matches no comparison', () => {
    const records = { nan: { z: Number.NaN }, inf: { z: Number.POSITIVE_INFINITY } };
    expect(matches({ z: { $gt: 0 } }, records)).toEqual(['inf']);
    expect(matches({ z: { $lte: 0 } }, records)).toEqual([]);
    expect(matches({ z: { $exists: true } }, records)).toEqual(['nan', 'inf']);
    expect(isScalar(Number.NaN)).toBe(false);
    expect(isScalar(Number.NEGATIVE_INFINITY)).toBe(false);
    expect(isScalar(-0)).toBe(true);
  });

  it('strings compare by code units: a lone surrogate matches only itself, never U+FFFD, and may be a field name', () => {
    const lone = '\uD83D';
    const records = { lone: { s: lone }, replaced: { s: '\uFFFD' }, pair: { s: '\u{1F600}' }, key: { [lone]: 1 } };
    expect(matches({ s: lone }, records)).toEqual(['lone']);
    expect(matches({ s: '\uFFFD' }, records)).toEqual(['replaced']);
    expect(matches({ s: { $in: [lone, '\uDE00'] } }, records)).toEqual(['lone']);
    expect(matches({ s: { $gte: lone, $lt: '\uD83E' } }, records)).toEqual(['lone', 'pair']);
    expect(matches({ [lone]: 1 }, records)).toEqual(['key']);
    expect(matches({ ['\uFFFD']: 1 }, records)).toEqual([]);
  });

  it("a getter on the filter that throws gets VS_INVALID_ARGUMENT, not the getter's own error", () => {
    const field = Object.defineProperty({}, 'lang', {
      enumerable: true,
      get() {
        throw new Error('getter boom');
      },
    });
    expect(refusal(field).cause).toBeInstanceOf(Error);
    const op = Object.defineProperty({}, '$eq', {
      enumerable: true,
      get() {
        throw new Error('getter boom');
      },
    });
    refusal({ lang: op });
    const element = ['en'];
    Object.defineProperty(element, 1, {
      enumerable: true,
      get() {
        throw new Error('getter boom');
      },
    });
    refusal({ lang: { $in: element } });
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap boom');
        },
      },
    );
    refusal(trap);
    refusal({ $or: [trap] });
  });

  it('a getter on the filter is read once, when compiled: its later answers do not change the predicate', () => {
    let reads = 0;
    const filter = Object.defineProperty({}, 'lang', {
      enumerable: true,
      get() {
        reads += 1;
        return reads === 1 ? 'en' : 'sv';
      },
    });
    const accept = compileFilter(filter);
    expect(reads).toBe(1);
    expect(Object.keys(people).filter((k) => accept(people[k]))).toEqual(['ada', 'cy']);
    expect(reads).toBe(1);
  });

  it('non-enumerable and symbol keys of a filter are not conditions', () => {
    const filter = Object.defineProperty({ lang: 'en' }, 'admin', { value: true, enumerable: false });
    (filter as Record<symbol, unknown>)[Symbol('x')] = 'ignored';
    expect(matches(filter, people)).toEqual(['ada', 'cy']);
  });

  it('metadata that is an array, or a nested value that is one, has no fields', () => {
    const records = { arr: ['en'] as unknown as Metadata, nested: { a: [{ b: 1 }] } };
    expect(matches({ 0: 'en' }, records)).toEqual([]);
    expect(matches({ 'a.0.b': 1 }, records)).toEqual([]);
    expect(matches({ length: { $exists: true } }, records)).toEqual([]);
  });
});

describe('readFilter: the filter is read once, into plain frozen data that both the planner and the predicate use', () => {
  /** A filter whose `lang` getter alternates between two values on each read. */
  function alternating(first: string, second: string): { filter: object; reads: () => number } {
    let n = 0;
    const filter = Object.defineProperty({}, 'lang', {
      enumerable: true,
      get() {
        n += 1;
        return n % 2 === 1 ? first : second;
      },
    });
    return { filter, reads: () => n };
  }

  it('a getter that alternates is read once: the plan and the test see the same value', () => {
    const { filter, reads } = alternating('en', 'sv');
    const r = readFilter(filter);
    expect(reads()).toBe(1);
    expect({ ...r.tree }).toEqual({ lang: 'en' });
    expect(equalityConditions(r.tree)).toEqual([{ path: ['lang'], field: 'lang', values: ['en'] }]);
    expect(onlyEquality(r.tree)).toBe(true);
    expect(Object.keys(people).filter((k) => r.test(people[k]))).toEqual(['ada', 'cy']);
    expect(reads()).toBe(1);
  });

  it('so does a Proxy whose traps answer differently each time, at any depth ($and, operator objects, $in arrays)', () => {
    const counts = new Map<string, number>();
    const flip = <T extends object>(target: T, key: string, a: unknown, b: unknown): T =>
      new Proxy(target, {
        get(t, k, recv) {
          if (k !== key) return Reflect.get(t, k, recv);
          const n = (counts.get(key) ?? 0) + 1;
          counts.set(key, n);
          return n % 2 === 1 ? a : b;
        },
      });
    const inner = flip({ $in: ['x'] }, '$in', ['en'], ['sv', 'fr']);
    const filter = { $and: [flip({ lang: 'x' }, 'lang', inner, 'sv')] };
    const r = readFilter(filter);
    expect(Object.fromEntries(counts)).toEqual({ lang: 1, $in: 1 });
    expect(JSON.parse(JSON.stringify(r.tree))).toEqual({ $and: [{ lang: { $in: ['en'] } }] });
    expect(equalityConditions(r.tree)).toEqual([{ path: ['lang'], field: 'lang', values: ['en'] }]);
    expect(Object.keys(people).filter((k) => r.test(people[k]))).toEqual(['ada', 'cy']);
    expect(Object.fromEntries(counts)).toEqual({ lang: 1, $in: 1 });
  });

  it('the copy is frozen, has no prototype, keeps own "__proto__" keys as data and drops inherited or non-enumerable ones', () => {
    const filter = JSON.parse('{"__proto__": "x", "n": {"$eq": 1}, "$or": [{"__proto__": {"$exists": true}}]}') as object;
    Object.defineProperty(filter, 'hidden', { value: 1, enumerable: false });
    Object.setPrototypeOf(filter, { inherited: 1 });
    const r = readFilter(filter);
    expect(Object.isFrozen(r.tree)).toBe(true);
    expect(Object.getPrototypeOf(r.tree)).toBeNull();
    expect(Object.keys(r.tree).sort()).toEqual(['$or', '__proto__', 'n']);
    expect(Object.hasOwn(r.tree, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(r.tree, '__proto__')?.value).toBe('x');
    const or = r.tree['$or'] as Record<string, unknown>[];
    expect(Object.isFrozen(or) && Object.isFrozen(or[0]) && Object.isFrozen(r.tree['n'])).toBe(true);
    expect(Object.hasOwn(or[0]!, '__proto__')).toBe(true);
    const own = JSON.parse('{"__proto__": "x", "n": 1}') as Metadata;
    expect(r.test(own)).toBe(true);
    expect(r.test({ n: 1 })).toBe(false);
  });

  it('a search through a collection with an alternating getter returns what the same filter as plain data returns', async () => {
    const d = storeDirs();
    const store = await openTestStore(d, { autoFlushRecords: 0 });
    const c = await store.createCollection('c', { dim: 4 });
    const langs = ['en', 'sv', 'fr', 'de'];
    await c.upsert(
      Array.from({ length: 400 }, (_, i) => ({
        id: `r${i}`,
        vector: [Math.sin(i), Math.cos(i), (i % 7) / 7, (i % 11) / 11],
        metadata: { lang: langs[i % 4] as string },
      })),
    );
    await c.flush();
    const q = [0.2, 0.4, 0.1, 0.3];
    for (const k of [1, 10, 50]) {
      const plain = c.search(q, k, { filter: { lang: 'en' } });
      expect(plain.every((h) => h.metadata?.['lang'] === 'en')).toBe(true);
      // Read once (as 'en'): the metadata index's plan and the test agree, every hit is 'en' and none is missed.
      const got = c.search(q, k, { filter: alternating('en', 'sv').filter as Record<string, unknown> });
      expect(got).toEqual(plain);
      expect(c.countWhere(alternating('en', 'sv').filter as Record<string, unknown>)).toBe(100);
    }
  });
});

describe('an operator object with no operator', () => {
  it('is VS_INVALID_ARGUMENT naming the field, at any depth: it would otherwise match every record', () => {
    expect(refusal({ lang: {} }).message).toMatch(/"filter\.lang" is an operator object with no operator/);
    expect(refusal({ $and: [{ lang: 'en' }, { age: {} }] }).message).toMatch(/"filter\.\$and\[1\]\.age"/);
    refusal({ $or: [{ lang: {} }] });
    refusal({ $not: { 'team.name': {} } });
    // Operators that are not own enumerable properties are not there either.
    refusal({ lang: Object.create({ $eq: 'en' }) as object });
    refusal({ lang: Object.defineProperty({}, '$eq', { value: 'en', enumerable: false }) });
  });

  it('an empty filter (no field at all) still matches every record, and an own "__proto__" operator is unknown, not absent', () => {
    expect(matches({}, people)).toEqual(Object.keys(people));
    expect(matches({ $and: [{}] }, people)).toEqual(Object.keys(people));
    expect(refusal(JSON.parse('{"lang": {"__proto__": {"$eq": "en"}}}')).message).toMatch(/unknown operator "__proto__"/);
  });
});
