import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { Packr } from 'msgpackr';

const { HierarchicalNSW } = hnswlib;
type Index = InstanceType<typeof HierarchicalNSW>;

/**
 * The lean plaintext contender: the least a user would write without
 * vectorseal. One hnswlib-node index saved with writeIndex (which already
 * holds every vector), plus one msgpackr file of the ids and metadata; each
 * fsynced, then the directory. The same parameters, seed and insertion order
 * as vectorseal's memtable, so both sides hold the same graph.
 */
export interface LeanParams {
  dim: number;
  M: number;
  efConstruction: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const INDEX_FILE = 'index.hnsw';
const RECORDS_FILE = 'records.msgpack';

export type LeanMetadata = Record<string, unknown>;

export class LeanCollection {
  readonly ids: string[] = [];
  readonly metadata: (LeanMetadata | undefined)[] = [];
  readonly labels = new Map<string, number>();

  private constructor(readonly index: Index) {}

  static empty(p: LeanParams): LeanCollection {
    const index = new HierarchicalNSW('l2', p.dim);
    index.initIndex({ maxElements: 1024, m: p.M, efConstruction: p.efConstruction, randomSeed: 100 });
    return new LeanCollection(index);
  }

  /** Appends a record, growing the index geometrically as vectorseal's memtable does. */
  add(id: string, vector: Float32Array, metadata: LeanMetadata | undefined): void {
    const label = this.ids.length;
    if (label >= this.index.getMaxElements()) this.index.resizeIndex(Math.max(1024, this.index.getMaxElements() * 2));
    this.index.addPoint(Array.from(vector), label);
    this.ids.push(id);
    this.metadata.push(metadata);
    this.labels.set(id, label);
  }

  /** Persists into `dir` (which must exist); returns the bytes written. */
  async flush(dir: string): Promise<number> {
    const indexPath = join(dir, INDEX_FILE);
    this.index.writeIndexSync(indexPath);
    await fsync(indexPath);
    const h = await fs.open(join(dir, RECORDS_FILE), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await h.writeFile(packr.pack({ ids: this.ids, metadata: this.metadata.map((m) => m ?? null) }));
      await h.sync();
    } finally {
      await h.close();
    }
    await fsync(dir);
    return (await fs.stat(indexPath)).size + (await fs.stat(join(dir, RECORDS_FILE))).size;
  }

  /** Loads a flushed collection, ready to search. */
  static async open(dir: string, p: LeanParams): Promise<LeanCollection> {
    const index = new HierarchicalNSW('l2', p.dim);
    index.readIndexSync(join(dir, INDEX_FILE), false);
    const c = new LeanCollection(index);
    const r = packr.unpack(await fs.readFile(join(dir, RECORDS_FILE))) as { ids: string[]; metadata: (LeanMetadata | null)[] };
    if (r.ids.length !== index.getCurrentCount() || r.metadata.length !== r.ids.length)
      throw new Error('lean plaintext files disagree on the record count');
    r.ids.forEach((id, i) => {
      c.ids.push(id);
      c.metadata.push(r.metadata[i] ?? undefined);
      c.labels.set(id, i);
    });
    return c;
  }

  /** k nearest, closest first, with ids and metadata; `accept` filters during the graph walk (hnswlib's own filter). */
  search(query: Float32Array, k: number, ef: number, accept?: (m: LeanMetadata | undefined) => boolean): { id: string; score: number }[] {
    this.index.setEf(Math.max(ef, k));
    const res = accept
      ? this.index.searchKnn(Array.from(query), k, (label) => accept(this.metadata[label]))
      : this.index.searchKnn(Array.from(query), k);
    return res.neighbors.map((label, i) => ({
      id: this.ids[label] as string,
      score: res.distances[i] as number,
      metadata: this.metadata[label],
    }));
  }
}

async function fsync(path: string): Promise<void> {
  const h = await fs.open(path, constants.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
