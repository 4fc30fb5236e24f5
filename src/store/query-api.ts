import { InvalidArgumentError } from '../errors.js';
import type { Collection, SearchOptions, SearchResult, StoredRecord } from './collection.js';
import type { Filter } from './filter.js';
import type { Metadata } from './metadata.js';
import { checkId, checkPositiveInt } from './validate.js';

/*
 * The query API beyond upsert/get/search/delete, built on the collection's
 * public reads and one internal helper (matchingIds): batch search, getMany,
 * counting and deleting by filter, and paginated listing.
 */

const MAX_QUERIES = 10_000;
const MAX_IDS = 1_000_000;

/** Options of {@link Collection.records} and {@link Collection.list}. */
export interface ListOptions<M extends object = Metadata> {
  /** Only records whose metadata matches. */
  filter?: Filter<M>;
  /** Records per page (default 1000, at most 100,000). */
  pageSize?: number;
}

/** One page of {@link Collection.list}. */
export interface RecordPage<M extends object = Metadata> {
  records: StoredRecord<M>[];
  /** Pass as `after` for the next page; undefined on the last page. */
  next: string | undefined;
}

/** One search per query, same k and options; one result list per query, in order. */
export function searchMany<M extends object>(
  col: Collection<M>,
  queries: unknown,
  k: number,
  options: SearchOptions<M>,
): SearchResult<M>[][] {
  if (!Array.isArray(queries))
    throw new InvalidArgumentError(`"queries" expected an array of vectors, got ${queries === null ? 'null' : typeof queries}`);
  if (queries.length > MAX_QUERIES)
    throw new InvalidArgumentError(`"queries" expected at most ${MAX_QUERIES} vectors, got ${queries.length}`);
  return queries.map((q) => col.search(q as Float32Array | number[], k, options));
}

/** The records of `ids`, in order; undefined where an id has no record. */
export function getMany<M extends object>(col: Collection<M>, ids: unknown): (StoredRecord<M> | undefined)[] {
  if (!Array.isArray(ids)) throw new InvalidArgumentError(`"ids" expected an array of strings, got ${ids === null ? 'null' : typeof ids}`);
  if (ids.length > MAX_IDS) throw new InvalidArgumentError(`"ids" expected at most ${MAX_IDS} ids, got ${ids.length}`);
  ids.forEach((id, i) => checkId(id, `ids[${i}]`));
  return (ids as string[]).map((id) => col.get(id));
}

/** Live records whose metadata matches (all of them without a filter). */
export function countWhere<M extends object>(col: Collection<M>, filter: Filter<M> | undefined): number {
  return filter === undefined ? col.count : col.matchingIds(filter).length;
}

/**
 * Deletes the records whose metadata matches at the moment of the call, in
 * one durable batch; resolves with how many were deleted. Records written
 * after the call are not considered.
 */
export async function deleteWhere<M extends object>(col: Collection<M>, filter: Filter<M>): Promise<number> {
  if (filter === undefined)
    throw new InvalidArgumentError('"filter" expected an object of field conditions (deleteWhere({}) deletes every record)');
  const ids = col.matchingIds(filter);
  return ids.length === 0 ? 0 : col.delete(ids);
}

/** One page of records in id order (UTF-16 code unit order), starting after `after`. */
export function list<M extends object>(col: Collection<M>, options: ListOptions<M> & { after?: string }): RecordPage<M> {
  const pageSize = options.pageSize === undefined ? 1000 : checkPositiveInt(options.pageSize, 'pageSize', 100_000);
  if (options.after !== undefined) checkId(options.after, 'after');
  const after = options.after;
  const ids = col.matchingIds(options.filter).filter((id) => after === undefined || id > after);
  ids.sort(byCodeUnits);
  const page = ids.slice(0, pageSize);
  const records = page.map((id) => col.get(id) as StoredRecord<M>);
  return { records, next: ids.length > pageSize ? page[page.length - 1] : undefined };
}

/**
 * Every record (with its metadata and vector) in id order, a page at a time,
 * yielding to the event loop between pages. The ids are taken when the
 * iteration starts: records deleted meanwhile are skipped, records added
 * meanwhile are not visited, and a record updated meanwhile is visited as it
 * is when its page is read.
 */
export async function* records<M extends object>(col: Collection<M>, options: ListOptions<M>): AsyncGenerator<StoredRecord<M>> {
  const pageSize = options.pageSize === undefined ? 1000 : checkPositiveInt(options.pageSize, 'pageSize', 100_000);
  const ids = col.matchingIds(options.filter).sort(byCodeUnits);
  for (let i = 0; i < ids.length; i += pageSize) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    for (const id of ids.slice(i, i + pageSize)) {
      const r = col.get(id);
      if (r) yield r;
    }
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
