import { readFileSync } from 'node:fs';
import { InvalidArgumentError, NotFoundError } from '../errors.js';

/**
 * Parses `--vector`: a JSON array given inline, `@file.json` (read from that
 * file) or `-` (read from stdin). A missing file is a typed error naming it;
 * the vector's values never appear in a message.
 */
export function parseVectorOption(value: string): number[] {
  let text: string;
  let from: string;
  if (value === '-') {
    from = 'stdin';
    try {
      text = readFileSync(0, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError('--vector -: stdin cannot be read', { cause: err });
    }
  } else if (value.startsWith('@')) {
    const file = value.slice(1);
    from = file;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NotFoundError(`--vector: file ${file} does not exist`, { cause: err });
      throw new InvalidArgumentError(`--vector: file ${file} cannot be read (${code ?? 'error'})`, { cause: err });
    }
  } else {
    from = 'the argument';
    text = value;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`--vector expected a JSON array of numbers in ${from}, got text that is not JSON`);
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
    throw new InvalidArgumentError(`--vector expected a JSON array of numbers in ${from}`);
  return v as number[];
}
