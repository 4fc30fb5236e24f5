import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as errors from '../../src/errors.js';
import { ERROR_CODES, errorCode, VectorsealError } from '../../src/errors.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Every class exported by errors.ts that is a VectorsealError, with the code an instance carries. */
function errorClasses(): { name: string; code: string }[] {
  const out: { name: string; code: string }[] = [];
  for (const [name, value] of Object.entries(errors)) {
    if (typeof value !== 'function' || !(value.prototype instanceof Error)) continue;
    if (value !== VectorsealError && !(value.prototype instanceof VectorsealError)) continue;
    const instance = new (value as new (message: string) => VectorsealError)('probe');
    out.push({ name, code: instance.code });
  }
  return out;
}

describe('the error contract', () => {
  it('ERROR_CODES is exactly the codes of the error classes, one class per code', () => {
    const classes = errorClasses();
    const codes = classes.filter((c) => c.name !== 'VectorsealError').map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual([...ERROR_CODES].sort());
    expect(classes.find((c) => c.name === 'VectorsealError')?.code).toBe('VS_ERROR');
  });

  it("every class name ends in Error and is its instances' name; the cause is kept", () => {
    for (const { name } of errorClasses()) {
      const Cls = (errors as unknown as Record<string, new (m: string, o?: { cause?: unknown }) => VectorsealError>)[name]!;
      const cause = new Error('inner');
      const e = new Cls('outer', { cause });
      expect(name.endsWith('Error')).toBe(true);
      expect(e.name).toBe(name);
      expect(e.cause).toBe(cause);
    }
  });

  it("the README's Errors table lists every code, with its class, and nothing else", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const doc = readme.slice(readme.indexOf('\n## Errors\n'), readme.indexOf('\n## ', readme.indexOf('\n## Errors\n') + 1));
    const rows = [...doc.matchAll(/^\| `(VS_[A-Z_]+)` \| `(\w+)`/gm)].map((m) => ({ code: m[1], name: m[2] }));
    const classes = errorClasses();
    expect(rows.map((r) => r.code).sort()).toEqual([...ERROR_CODES, 'VS_ERROR'].sort());
    for (const row of rows) expect(classes.find((c) => c.name === row.name)?.code).toBe(row.code);
  });

  it('errorCode gives the stable code, and VS_ERROR for anything that is not a VectorsealError', () => {
    expect(errorCode(new errors.RollbackError('x'))).toBe('VS_ROLLBACK');
    expect(errorCode(new errors.CorruptDataError('x', { file: 'f' }))).toBe('VS_CORRUPT_DATA');
    expect(errorCode(Object.assign(new Error('fs'), { code: 'ENOENT' }))).toBe('VS_ERROR');
    expect(errorCode({ code: 'VS_WRONG_KEY' })).toBe('VS_ERROR');
    expect(errorCode(undefined)).toBe('VS_ERROR');
  });
});
