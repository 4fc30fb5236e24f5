import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { Packr } from 'msgpackr';
import type { Dataset } from './dataset.js';
import { vectorOf } from './dataset.js';
import type { SqliteConstructor, SqliteDatabase } from './peers.js';
import type { Log } from './progress.js';
import { progress } from './progress.js';

/**
 * The encrypted embedded store a user would otherwise pick:
 * better-sqlite3-multiple-ciphers with the SQLCipher scheme and a raw
 * 256-bit key, the same records (id, float32 vector blob, msgpack metadata)
 * bulk-inserted in one transaction with the library's default durability.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

function openKeyed(Database: SqliteConstructor, file: string, key: Buffer, options?: { fileMustExist?: boolean }): SqliteDatabase {
  const db = new Database(file, options);
  db.pragma(`cipher='sqlcipher'`);
  // A raw key (x'...'): no passphrase KDF, like vectorseal's 32-byte DEK.
  db.pragma(`key="x'${key.toString('hex')}'"`);
  return db;
}

export interface SqlcipherRun {
  /** Seconds for the transaction: every insert and the commit. */
  seconds: number;
  fileBytes: number;
}

/** Bulk-inserts the data set into a new encrypted database at `file`; verifies it afterwards (outside the timing). */
export async function sqlcipherBulkInsert(Database: SqliteConstructor, file: string, d: Dataset, log: Log): Promise<SqlcipherRun> {
  await fs.rm(file, { force: true });
  const key = randomBytes(32);
  const db = openKeyed(Database, file, key);
  let seconds: number;
  try {
    db.exec('CREATE TABLE records (id TEXT PRIMARY KEY, vector BLOB NOT NULL, metadata BLOB)');
    const insert = db.prepare('INSERT INTO records (id, vector, metadata) VALUES (?, ?, ?)');
    const p = progress(log, '  sqlcipher insert', d.count);
    const all = db.transaction(() => {
      for (let i = 0; i < d.count; i++) {
        const v = vectorOf(d, i);
        insert.run(d.ids[i], Buffer.from(v.buffer, v.byteOffset, v.byteLength), packr.pack(d.metadata[i]));
        if ((i & 1023) === 0) p.tick(i);
      }
    });
    const start = process.hrtime.bigint();
    all();
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
    p.end();
  } finally {
    db.close();
  }
  verify(Database, file, key, d);
  key.fill(0);
  if (await looksPlaintext(file)) throw new Error('sqlcipher contender: the database file is not encrypted; refusing to report it');
  return { seconds, fileBytes: (await fs.stat(file)).size };
}

/** The database holds every record, reads back under the key, and is not readable without it. */
function verify(Database: SqliteConstructor, file: string, key: Buffer, d: Dataset): void {
  const fail = (why: string): never => {
    throw new Error(`sqlcipher contender: ${why}; refusing to report it`);
  };
  const db = openKeyed(Database, file, key, { fileMustExist: true });
  try {
    const count = (db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
    if (count !== d.count) fail(`holds ${count} records, expected ${d.count}`);
    const get = db.prepare('SELECT vector, metadata FROM records WHERE id = ?');
    for (const i of [0, d.count >> 1, d.count - 1]) {
      const row = get.get(d.ids[i]) as { vector: Buffer; metadata: Buffer } | undefined;
      const v = vectorOf(d, i);
      if (!row || !row.vector.equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength))) return fail(`record ${i} reads back wrong`);
      if (JSON.stringify(packr.unpack(row.metadata)) !== JSON.stringify(d.metadata[i])) fail(`record ${i}'s metadata reads back wrong`);
    }
  } finally {
    db.close();
  }
  const plain = new Database(file, { fileMustExist: true });
  try {
    plain.prepare('SELECT count(*) FROM records').get();
    fail('opens without the key');
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('sqlcipher contender')) throw err;
  } finally {
    plain.close();
  }
}

/** Whether the file starts like a plaintext SQLite database (it must not). */
export async function looksPlaintext(file: string): Promise<boolean> {
  const h = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(16);
    await h.read(head, 0, 16, 0);
    return head.equals(SQLITE_MAGIC);
  } finally {
    await h.close();
  }
}
