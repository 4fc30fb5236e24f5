import { InvalidArgumentError } from '../errors.js';
import type { CollectionInfo } from './catalog.js';

/** The options of createCollection that getOrCreateCollection compares with an existing collection. */
export interface CollectionShape {
  dim?: unknown;
  space?: unknown;
  tenant?: unknown;
  M?: unknown;
  efConstruction?: unknown;
}

/**
 * Throws InvalidArgumentError when an existing collection differs from the
 * options asked for; options left out are not compared, except `space`,
 * whose default is 'l2'.
 */
export function checkSameOptions(info: CollectionInfo, options: CollectionShape): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('"options" expected an object with at least "dim"');
  const want: [string, unknown, unknown][] = [
    ['dim', options.dim, info.dim],
    ['space', options.space ?? 'l2', info.space],
    ['tenant', options.tenant, info.tenant],
    ['M', options.M, info.M],
    ['efConstruction', options.efConstruction, info.efConstruction],
  ];
  for (const [name, asked, has] of want) {
    if (asked === undefined && name !== 'dim') continue;
    if (asked !== has) {
      throw new InvalidArgumentError(`collection "${info.name}" exists with ${name} ${String(has)}, not ${String(asked)}`);
    }
  }
}
