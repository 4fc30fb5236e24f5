import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { Packr } from 'msgpackr';
import { vectorOf, type Dataset } from './dataset.js';
import type { SqliteConstructor, SqliteDatabase, SqliteVec } from './peers.js';
import { progress, type Log } from './progress.js';
import { looksPlaintext } from './sqlcipher.js';

/**
 * The encrypted peer a Node user would otherwise pick: SQLCipher
 * (better-sqlite3-multiple-ciphers, raw 256-bit key) with sqlite-vec loaded
 * as an extension. Records go into a plain table (id, msgpack metadata) and
 * a vec0 virtual table (the float32 vector, and the filter fields as vec0
 * metadata columns so that sqlite-vec filters inside its scan); both in one
 * transaction. Its k-NN search is an exact scan.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export interface SqliteVecStore {
  db: SqliteDatabase;
  /** k nearest ids, closest first; `where` is one metadata column and value (s1, s10 or s50). */
  search(q: Float32Array, k: number, where?: { column: 's1' | 's10' | 's50'; value: number }): string[];
  close(): void;
}

function openKeyed(Database: SqliteConstructor, vec: SqliteVec, file: string, key: Buffer): SqliteDatabase {
  const db = new Database(file);
  db.pragma(`cipher='sqlcipher'`);
  db.pragma(`key="x'${key.toString('hex')}'"`);
  db.loadExtension(vec.getLoadablePath());
  return db;
}

/** Bulk-inserts `d` into a new database; returns the seconds of the transaction and the open store. */
export async function sqliteVecInsert(
  Database: SqliteConstructor,
  vec: SqliteVec,
  file: string,
  d: Dataset,
  log: Log,
): Promise<{ seconds: number; fileBytes: number; key: Buffer }> {
  await fs.rm(file, { force: true });
  const key = randomBytes(32);
  const db = openKeyed(Database, vec, file, key);
  let seconds: number;
  try {
    db.exec('CREATE TABLE records (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, metadata BLOB)');
    db.exec(`CREATE VIRTUAL TABLE vecs USING vec0(embedding float[${d.dim}], s1 integer, s10 integer, s50 integer)`);
    const rec = db.prepare('INSERT INTO records (rowid, id, metadata) VALUES (?, ?, ?)');
    const vrow = db.prepare('INSERT INTO vecs (rowid, embedding, s1, s10, s50) VALUES (?, ?, ?, ?, ?)');
    const p = progress(log, '  sqlcipher + sqlite-vec insert', d.count);
    const all = db.transaction(() => {
      for (let i = 0; i < d.count; i++) {
        const v = vectorOf(d, i);
        const m = d.metadata[i] as { s1: number; s10: number; s50: number };
        rec.run(BigInt(i + 1), d.ids[i], packr.pack(m));
        vrow.run(BigInt(i + 1), Buffer.from(v.buffer, v.byteOffset, v.byteLength), BigInt(m.s1), BigInt(m.s10), BigInt(m.s50));
        if ((i & 1023) === 0) p.tick(i);
      }
    });
    const t0 = process.hrtime.bigint();
    all();
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    p.end();
  } finally {
    db.close();
  }
  if (await looksPlaintext(file)) throw new Error('sqlite-vec contender: the database file is not encrypted; refusing to report it');
  let bytes = 0;
  for (const f of [file, `${file}-wal`])
    bytes += await fs.stat(f).then(
      (s) => s.size,
      () => 0,
    );
  return { seconds, fileBytes: bytes, key };
}

/** Opens the database again (key, extension), ready to search. */
export function sqliteVecOpen(Database: SqliteConstructor, vec: SqliteVec, file: string, key: Buffer): SqliteVecStore {
  const db = openKeyed(Database, vec, file, key);
  const knn = db.prepare(
    'SELECT r.id AS id FROM (SELECT rowid, distance FROM vecs WHERE embedding MATCH ? AND k = ?) ' +
      'v JOIN records r ON r.rowid = v.rowid ORDER BY v.distance',
  );
  const filtered = {
    s1: db.prepare(
      'SELECT r.id AS id FROM (SELECT rowid, distance FROM vecs WHERE embedding MATCH ? AND k = ? AND s1 = ' +
        '?) v JOIN records r ON r.rowid = v.rowid ORDER BY v.distance',
    ),
    s10: db.prepare(
      'SELECT r.id AS id FROM (SELECT rowid, distance FROM vecs WHERE embedding MATCH ? AND k = ? AND s10 ' +
        '= ?) v JOIN records r ON r.rowid = v.rowid ORDER BY v.distance',
    ),
    s50: db.prepare(
      'SELECT r.id AS id FROM (SELECT rowid, distance FROM vecs WHERE embedding MATCH ? AND k = ? AND s50 ' +
        '= ?) v JOIN records r ON r.rowid = v.rowid ORDER BY v.distance',
    ),
  };
  return {
    db,
    search(q, k, where) {
      const blob = Buffer.from(q.buffer, q.byteOffset, q.byteLength);
      const rows = (where ? filtered[where.column].all(blob, BigInt(k), BigInt(where.value)) : knn.all(blob, BigInt(k))) as {
        id: string;
      }[];
      return rows.map((r) => r.id);
    },
    close() {
      db.close();
    },
  };
}
