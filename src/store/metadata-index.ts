import { fieldValue, isScalar } from './filter.js';
import type { EqualityCondition } from './filter-plan.js';
import type { Metadata } from './metadata.js';

/**
 * An in-memory inverted index over one layer's metadata: for each field a
 * query has filtered on, the labels holding each scalar value. A field is
 * indexed the first time a filter names it (one pass over the layer) and
 * kept up to date as the layer grows; a layer's records never change in
 * place (an update is a new record in the memtable), so postings only grow.
 * Dead labels stay in the postings: the caller skips them, and counts are
 * upper bounds.
 *
 * Nothing here leaves memory: it is rebuilt from the decrypted metadata.
 */
export class MetadataIndex {
  private readonly fields = new Map<string, { path: string[]; indexed: number; postings: Map<unknown, number[]> }>();

  constructor(private readonly metadata: readonly (Metadata | undefined)[]) {}

  /** Labels that may match `cond` (all that do, perhaps some dead ones), in label order per value. */
  postings(cond: EqualityCondition): number[][] {
    const f = this.field(cond);
    const out: number[][] = [];
    for (const v of cond.values) {
      const p = f.postings.get(v);
      if (p) out.push(p);
    }
    return out;
  }

  /** How many labels `cond`'s values hold, dead ones included. */
  count(cond: EqualityCondition): number {
    let n = 0;
    for (const p of this.postings(cond)) n += p.length;
    return n;
  }

  private field(cond: EqualityCondition): { path: string[]; indexed: number; postings: Map<unknown, number[]> } {
    let f = this.fields.get(cond.field);
    if (!f) {
      f = { path: cond.path, indexed: 0, postings: new Map() };
      this.fields.set(cond.field, f);
    }
    const n = this.metadata.length;
    for (let label = f.indexed; label < n; label++) {
      const v = fieldValue(this.metadata[label], f.path);
      // Objects and arrays never equal a scalar condition: not indexed.
      if (!isScalar(v)) continue;
      let p = f.postings.get(v);
      if (!p) {
        p = [];
        f.postings.set(v, p);
      }
      p.push(label);
    }
    f.indexed = n;
    return f;
  }
}
