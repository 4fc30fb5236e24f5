import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { VectorsealError } from '../errors.js';
import type { DekContext } from '../keys/context.js';
import { KEYRING_FILE, KeyManager, type ProviderFactory } from '../keys/key-manager.js';
import { readKeyring, type KeyringData, type StoredWrap } from '../keys/keyring-file.js';
import type { KekProvider } from '../keys/provider.js';
import { SEGMENT_HEADER_SIZE, SEGMENT_MAGIC, SegmentReader, decodeSegmentHeader } from '../storage/segment.js';
import { WAL_HEADER_SIZE, WAL_MAGIC, readWal, readWalHeader } from '../storage/wal.js';
import { bytesToId } from '../util/ids.js';

/** The verdict on one file. */
export interface ShredFileResult {
  file: string;
  /** 'unrecoverable': no key available opens it; 'OPENABLE': one does; 'not-vectorseal': no vectorseal header. */
  status: 'unrecoverable' | 'OPENABLE' | 'not-vectorseal';
  collectionId?: string;
  dekVersion?: number;
  /** For OPENABLE: which keyring and KEK opened it. */
  openedWith?: { keyring: string; kek: string; keyId: string };
  /** Why each attempt failed (error codes and key references, never key material). */
  attempts: string[];
}

export interface ShredCheckOptions {
  /** Files or directories (searched for segment, manifest and WAL files). */
  paths: string[];
  /** Keyring files to try: the store's current one and any old copies. */
  keyrings: string[];
  localKeyDir?: string;
  providers?: Record<string, ProviderFactory>;
}

interface Ring {
  file: string;
  data: KeyringData;
  keys: KeyManager;
}

/**
 * Shows, for each file, whether any key still available opens it: every
 * wrap of the file's DEK version in every keyring given (the current one and
 * old copies) is tried with every KEK those keyrings name, ignoring the
 * keyrings' own states (an attacker could edit them), and a DEK that unwraps
 * must also open the file. Nothing is written to any store.
 */
export async function checkShredded(options: ShredCheckOptions): Promise<ShredFileResult[]> {
  const work = await fs.mkdtemp(join(tmpdir(), 'vs-shred-check-'));
  const rings: Ring[] = [];
  try {
    for (const [i, file] of options.keyrings.entries()) {
      const data = await readKeyring(file);
      const dir = join(work, String(i));
      await fs.mkdir(dir, { mode: 0o700 });
      await fs.copyFile(file, join(dir, KEYRING_FILE));
      const keys = await KeyManager.open({
        dir,
        ...(options.localKeyDir === undefined ? {} : { localKeyDir: options.localKeyDir }),
        ...(options.providers === undefined ? {} : { providers: options.providers }),
      });
      rings.push({ file, data, keys });
    }
    const out: ShredFileResult[] = [];
    for (const file of await expand(options.paths)) out.push(await checkFile(file, rings));
    return out;
  } finally {
    for (const r of rings) await r.keys.close().catch(() => undefined);
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function checkFile(file: string, rings: Ring[]): Promise<ShredFileResult> {
  const head = Buffer.alloc(Math.max(SEGMENT_HEADER_SIZE, WAL_HEADER_SIZE));
  const handle = await fs.open(file, 'r');
  let n: number;
  try {
    n = (await handle.read(head, 0, head.length, 0)).bytesRead;
  } finally {
    await handle.close();
  }
  const magic = head.subarray(0, 4);
  let ctx: DekContext;
  let open: (dek: Uint8Array) => Promise<void>;
  if (n >= SEGMENT_HEADER_SIZE && magic.equals(SEGMENT_MAGIC)) {
    const h = decodeSegmentHeader(head.subarray(0, n), file);
    ctx = { storeId: h.storeId, collectionId: h.collectionId, dekVersion: h.dekVersion };
    open = async (dek) => {
      // Opening checks the key commitment: only the right DEK gets past it.
      const reader = await SegmentReader.open(file, { storeId: h.storeId, collectionId: h.collectionId }, () => dek);
      await reader.close();
    };
  } else if (n >= WAL_HEADER_SIZE && magic.equals(WAL_MAGIC)) {
    const expect = { storeId: bytesToId(head.subarray(8, 24)), collectionId: bytesToId(head.subarray(24, 40)), walSeq: Number(head.readBigUInt64BE(40)) };
    const h = await readWalHeader(file, expect);
    ctx = { storeId: h.storeId, collectionId: h.collectionId, dekVersion: h.dekVersion };
    open = async (dek) => {
      const contents = await readWal(file, expect, () => dek);
      for (const r of contents.records) r.fill(0);
    };
  } else {
    return { file, status: 'not-vectorseal', attempts: [] };
  }
  const base = { file, collectionId: ctx.collectionId, dekVersion: ctx.dekVersion };
  const attempts: string[] = [];
  for (const ring of rings) {
    if (ring.data.storeId !== ctx.storeId) {
      attempts.push(`${basename(ring.file)}: another store`);
      continue;
    }
    const col = ring.data.collections[ctx.collectionId] ?? ring.data.system?.[ctx.collectionId];
    const dek = col?.deks.find((d) => d.version === ctx.dekVersion);
    if (!dek || dek.wraps.length === 0) {
      attempts.push(`${basename(ring.file)}: no wrap of DEK v${ctx.dekVersion}${dek ? ` (${dek.state})` : ''}`);
      continue;
    }
    for (const wrap of dek.wraps) {
      for (const candidate of kekCandidates(wrap, rings)) {
        let plaintext: Uint8Array | undefined;
        try {
          const provider: KekProvider = await candidate.ring.keys.provider(candidate.name);
          plaintext = await provider.unwrap({ provider: wrap.provider, keyId: wrap.keyId, ...(wrap.kekVersion === undefined ? {} : { kekVersion: wrap.kekVersion }), blob: Buffer.from(wrap.blob, 'base64') }, ctx);
          await open(plaintext);
          return { ...base, status: 'OPENABLE', openedWith: { keyring: ring.file, kek: candidate.name, keyId: wrap.keyId }, attempts };
        } catch (err) {
          attempts.push(`${basename(ring.file)}: KEK ${candidate.name} (${wrap.keyId}${wrap.kekVersion === undefined ? '' : ` v${wrap.kekVersion}`}): ${err instanceof VectorsealError ? err.code : 'VS_ERROR'}`);
        } finally {
          plaintext?.fill(0);
        }
      }
    }
  }
  return { ...base, status: 'unrecoverable', attempts };
}

/** Every KEK entry, in any keyring, that names the wrap's provider and key id. */
function kekCandidates(wrap: StoredWrap, rings: Ring[]): { ring: Ring; name: string }[] {
  const seen = new Set<string>();
  const out: { ring: Ring; name: string }[] = [];
  for (const ring of rings) {
    for (const [name, entry] of Object.entries(ring.data.keks)) {
      if (entry.provider !== wrap.provider || entry.keyId !== wrap.keyId) continue;
      const id = `${entry.provider}|${entry.keyId}|${JSON.stringify(entry.config ?? {})}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ ring, name });
    }
  }
  return out;
}

async function expand(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    const st = await fs.stat(p);
    if (!st.isDirectory()) {
      out.push(p);
      return;
    }
    for (const e of (await fs.readdir(p)).sort()) {
      const child = join(p, e);
      const s = await fs.stat(child);
      if (s.isDirectory()) await walk(child);
      else if (/\.(vseg|wal)$/.test(e) || e === 'MANIFEST') out.push(child);
    }
  };
  for (const p of paths) await walk(p);
  return out;
}
