import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { Packr } from 'msgpackr';

const { HierarchicalNSW } = hnswlib;
type Index = InstanceType<typeof HierarchicalNSW>;

/**
 * The plaintext contender: what a user would write without vectorseal. One
 * hnswlib-node HierarchicalNSW, built the way vectorseal's memtable builds
 * its own (same parameters and seed, same insertion order, same geometric
 * growth), persisted with writeIndex plus two msgpackr files (vectors with
 * their ids, and metadata), each fsynced like the store's files.
 */
export interface PlainParams {
  dim: number;
  M: number;
  efConstruction: number;
}

/** msgpackr as the store configures it, so that both sides encode alike. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const INDEX_FILE = 'index.hnsw';
const VECTORS_FILE = 'vectors.msgpack';
const METADATA_FILE = 'metadata.msgpack';

export class PlainCollection {
  readonly ids: string[] = [];
  readonly vectors: Float32Array[] = [];
  readonly metadata: (Record<string, unknown> | undefined)[] = [];
  /** id → label, what a user needs to serve get() and upserts. */
  readonly labels = new Map<string, number>();

  private constructor(
    readonly index: Index,
    readonly params: PlainParams,
  ) {}

  static empty(params: PlainParams): PlainCollection {
    const index = new HierarchicalNSW('l2', params.dim);
    index.initIndex({ maxElements: 1024, m: params.M, efConstruction: params.efConstruction, randomSeed: 100 });
    return new PlainCollection(index, params);
  }

  /** Appends a record, growing the index geometrically as vectorseal's memtable does. */
  add(id: string, vector: Float32Array, metadata: Record<string, unknown> | undefined): void {
    const label = this.ids.length;
    if (label >= this.index.getMaxElements()) this.index.resizeIndex(Math.max(1024, this.index.getMaxElements() * 2));
    this.index.addPoint(Array.from(vector), label);
    this.ids.push(id);
    this.vectors.push(vector);
    this.metadata.push(metadata);
    this.labels.set(id, label);
  }

  /** Writes the index, the vectors and the metadata into `dir` (which must exist), each fsynced, then the directory. */
  async flush(dir: string): Promise<number> {
    const indexPath = join(dir, INDEX_FILE);
    this.index.writeIndexSync(indexPath);
    await fsyncFile(indexPath);
    const dim = this.params.dim;
    const flat = Buffer.allocUnsafe(this.vectors.length * dim * 4);
    this.vectors.forEach((v, i) => flat.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), i * dim * 4));
    await writeDurable(join(dir, VECTORS_FILE), packr.pack({ dim, ids: this.ids, vectors: flat }));
    await writeDurable(join(dir, METADATA_FILE), packr.pack(this.metadata.map((m) => m ?? null)));
    await fsyncFile(dir);
    return bytesIn(dir);
  }

  /** Loads a flushed collection, ready to search and to get records by id. */
  static async open(dir: string, params: PlainParams): Promise<PlainCollection> {
    const index = new HierarchicalNSW('l2', params.dim);
    index.readIndexSync(join(dir, INDEX_FILE), false);
    const c = new PlainCollection(index, params);
    const block = packr.unpack(await fs.readFile(join(dir, VECTORS_FILE))) as { dim: number; ids: string[]; vectors: Uint8Array };
    const metas = packr.unpack(await fs.readFile(join(dir, METADATA_FILE))) as (Record<string, unknown> | null)[];
    if (block.dim !== params.dim || block.ids.length !== index.getCurrentCount() || metas.length !== block.ids.length) {
      throw new Error('plaintext files disagree on the record count or dimension');
    }
    const all = new Float32Array(block.ids.length * params.dim);
    new Uint8Array(all.buffer).set(block.vectors);
    block.ids.forEach((id, i) => {
      c.ids.push(id);
      c.vectors.push(all.subarray(i * params.dim, (i + 1) * params.dim));
      c.metadata.push(metas[i] ?? undefined);
      c.labels.set(id, i);
    });
    return c;
  }

  /** k nearest records, closest first, with ids and metadata as a user would return them. */
  search(query: Float32Array, k: number, ef: number): { id: string; score: number; metadata: Record<string, unknown> | undefined }[] {
    this.index.setEf(Math.max(ef, k));
    const res = this.index.searchKnn(Array.from(query), k);
    return res.neighbors.map((label, i) => ({
      id: this.ids[label] as string,
      score: res.distances[i] as number,
      metadata: this.metadata[label],
    }));
  }
}

async function fsyncFile(path: string): Promise<void> {
  const h = await fs.open(path, constants.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function writeDurable(path: string, data: Uint8Array): Promise<void> {
  const h = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

async function bytesIn(dir: string): Promise<number> {
  let n = 0;
  for (const f of [INDEX_FILE, VECTORS_FILE, METADATA_FILE]) n += (await fs.stat(join(dir, f))).size;
  return n;
}
