import type { DocumentInterface } from '@langchain/core/documents';
import { InvalidArgumentError } from '../../errors.js';
import type { Filter } from '../../store/filter.js';
import type { Metadata } from '../../store/metadata.js';

/**
 * How a LangChain document is kept in a vectorseal record: the record's
 * (encrypted) metadata is `{ c: pageContent, m: metadata }`, so the text is
 * sealed exactly like the metadata and never stored beside it in clear.
 */

/** vectorseal's filter object over the documents' metadata (see the store's filter language). */
export type VectorsealFilter = Filter;

/**
 * A document's stored form. Metadata is kept as JSON would save it (what
 * HNSWLib's docstore.json does): undefined fields dropped, dates as strings.
 */
export function toStoredMetadata(doc: DocumentInterface, i: number): Metadata {
  let metadata: unknown;
  try {
    const json = JSON.stringify(doc.metadata ?? {});
    metadata = json === undefined ? {} : JSON.parse(json);
  } catch {
    // The cause is left out: its message can quote metadata.
    throw new InvalidArgumentError(`documents[${i}]: "metadata" does not serialize as JSON (a cycle, a BigInt or a getter that throws)`);
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InvalidArgumentError(`documents[${i}]: "metadata" expected an object`);
  }
  return { c: doc.pageContent, m: metadata as Metadata };
}

/** Maps a filter on document metadata onto the stored records (fields under `m`). */
export function toStoreFilter(filter: unknown): Filter {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new InvalidArgumentError(
      '"filter" expected a filter object or a function of the document, ' +
        `got ${filter === null ? 'null' : Array.isArray(filter) ? 'an array' : typeof filter}`,
    );
  }
  const out: Filter = {};
  for (const [field, cond] of Object.entries(filter)) {
    if (field.length === 0 || field.startsWith('$'))
      throw new InvalidArgumentError(`"filter" field names must be non-empty and not start with "$", got "${field.slice(0, 64)}"`);
    Object.defineProperty(out, `m.${field}`, { value: cond, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
