import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalJson } from '../../src/audit/index.js';
import { InvalidArgumentError } from '../../src/errors.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true } })).toBe('{"a":{"c":true,"d":[1,"x",null]},"b":1}');
    expect(canonicalJson({ z: undefined, a: 1 })).toBe('{"a":1}');
  });

  it('is the same for any key order and survives a JSON round trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(canonicalJson(JSON.parse(JSON.stringify(value)))).toBe(canonicalJson(JSON.parse(JSON.stringify(value))));
      }),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.integer()), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(record));
      }),
    );
  });

  it('refuses what JSON cannot carry exactly', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1n, Buffer.from('x'), new Date(0), [undefined], () => 1]) {
      expect(() => canonicalJson(bad)).toThrow(InvalidArgumentError);
    }
  });
});
