import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { errorCode } from '../errors.js';
import type { DekContext } from '../keys/context.js';
import type { KekConfig } from '../keys/kek-config.js';
import type { CollectionKeys, KeyringData, StoredWrap } from '../keys/keyring-file.js';
import { readKeyringFile } from '../keys/keyring-log.js';
import { ProviderRegistry, type ProviderFactory } from '../keys/provider-registry.js';
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
  /** The caller's KEKs (as openStore's `keks`): the only ones tried, with local keys in the local key directory. */
  keks?: Record<string, KekConfig>;
  localKeyDir?: string;
  providers?: Record<string, ProviderFactory>;
}

interface Ring {
  file: string;
  storeId: string;
  /** Every wrap any record of the file holds, by `<collectionId>/<dekVersion>`: an attacker with an old copy has all of them. */
  wraps: Map<string, StoredWrap[]>;
  /** DEK states as the last record says (for the report only). */
  states: Map<string, string>;
}

/**
 * Shows, for each file, whether any key still available opens it: every
 * wrap of the file's DEK version in every record of every keyring given (the
 * current one and old copies) is tried with the caller's KEKs, ignoring the
 * keyrings' MACs and states (an attacker could edit them, or hold the MAC
 * key), and a DEK that unwraps must also open the file. Nothing is written
 * to any store.
 */
export async function checkShredded(options: ShredCheckOptions): Promise<ShredFileResult[]> {
  const registry = new ProviderRegistry({
    ...(options.keks === undefined ? {} : { keks: options.keks }),
    ...(options.localKeyDir === undefined ? {} : { localKeyDir: options.localKeyDir }),
    ...(options.providers === undefined ? {} : { providers: options.providers }),
  });
  try {
    const rings: Ring[] = [];
    for (const file of options.keyrings) rings.push(await readRing(file));
    const out: ShredFileResult[] = [];
    for (const file of await expand(options.paths)) out.push(await checkFile(file, rings, registry));
    return out;
  } finally {
    await registry.close();
  }
}

/** Every wrap in every record of a keyring file, MACs not checked. */
async function readRing(file: string): Promise<Ring> {
  const u = await readKeyringFile(file);
  const wraps = new Map<string, StoredWrap[]>();
  const states = new Map<string, string>();
  const take = (cid: string, col: CollectionKeys | undefined) => {
    if (typeof col !== 'object' || col === null || !Array.isArray(col.deks)) return;
    for (const d of col.deks) {
      const key = `${cid}/${d?.version}`;
      states.set(key, String(d?.state));
      const list = wraps.get(key) ?? [];
      for (const w of Array.isArray(d?.wraps) ? d.wraps : []) if (!list.some((x) => x.blob === w.blob)) list.push(w);
      wraps.set(key, list);
    }
  };
  for (const line of u.lines) {
    let rec: { t?: string; state?: KeyringData; ops?: { k: string; id: string; v?: CollectionKeys }[] };
    try {
      rec = JSON.parse(`{${line.toString('utf8').replace(/^\{"m":"[0-9a-f]{64}",/, '')}`) as typeof rec;
    } catch {
      continue;
    }
    if (rec.t === 'cp' && rec.state) {
      for (const [cid, col] of [...Object.entries(rec.state.collections ?? {}), ...Object.entries(rec.state.system ?? {})]) take(cid, col);
    } else if (Array.isArray(rec.ops)) {
      for (const op of rec.ops) if ((op.k === 'c' || op.k === 's') && typeof op.id === 'string') take(op.id, op.v);
    }
  }
  return { file, storeId: u.storeId, wraps, states };
}

async function checkFile(file: string, rings: Ring[], registry: ProviderRegistry): Promise<ShredFileResult> {
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
    const expect = {
      storeId: bytesToId(head.subarray(8, 24)),
      collectionId: bytesToId(head.subarray(24, 40)),
      walSeq: Number(head.readBigUInt64BE(40)),
    };
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
    if (ring.storeId !== ctx.storeId) {
      attempts.push(`${basename(ring.file)}: another store`);
      continue;
    }
    const key = `${ctx.collectionId}/${ctx.dekVersion}`;
    const wraps = ring.wraps.get(key) ?? [];
    if (wraps.length === 0) {
      const state = ring.states.get(key);
      attempts.push(`${basename(ring.file)}: no wrap of DEK v${ctx.dekVersion}${state ? ` (${state})` : ''}`);
      continue;
    }
    for (const wrap of wraps) {
      let plaintext: Uint8Array | undefined;
      try {
        const provider: KekProvider = await registry.make(wrap.kek, { provider: wrap.provider, keyId: wrap.keyId });
        try {
          plaintext = await provider.unwrap(
            {
              provider: wrap.provider,
              keyId: wrap.keyId,
              ...(wrap.kekVersion === undefined ? {} : { kekVersion: wrap.kekVersion }),
              blob: Buffer.from(wrap.blob, 'base64'),
            },
            ctx,
          );
        } finally {
          await provider.close();
        }
        await open(plaintext);
        return { ...base, status: 'OPENABLE', openedWith: { keyring: ring.file, kek: wrap.kek, keyId: wrap.keyId }, attempts };
      } catch (err) {
        attempts.push(
          `${basename(ring.file)}: KEK ${wrap.kek} (${wrap.keyId}` +
            `${wrap.kekVersion === undefined ? '' : ` v${wrap.kekVersion}`}): ${errorCode(err)}`,
        );
      } finally {
        plaintext?.fill(0);
      }
    }
  }
  return { ...base, status: 'unrecoverable', attempts };
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
