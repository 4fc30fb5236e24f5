// Writer child for the crash-safety harness. It opens a store through the
// built package and runs random operations (seeded) until it is killed or its
// budget runs out. Protocol on stdout, one line each, written synchronously so
// that everything printed before a SIGKILL reaches the parent:
//   "b <n> <json>"  operation n is about to start (its full content)
//   "a <n>"         operation n resolved (acknowledged)
//   "e <n> <code>"  operation n failed with a typed error
//   "ready"         the store is open
// Two operations run concurrently only when they touch disjoint ids, so the
// parent can judge each one as all-or-nothing on its own.
import { writeSync } from 'node:fs';
import { openStore } from '../../../dist/index.js';

const [dir, keyDir, seedText, budgetText] = process.argv.slice(2);
const budget = Number(budgetText) || 200;
const DIM = 8;
const POOL = 160;
const COLLECTIONS = ['a', 'b'];

let state = Number(seedText) >>> 0;
/** mulberry32: reproducible from the seed the parent logs. */
function rnd() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (list) => list[int(list.length)];
const line = (text) => writeSync(1, `${text}\n`);

// durability 'none': every kill here is a SIGKILL of the process, never a power
// cut, and the kernel's page cache outlives the process, so an fsync cannot
// change what the next open reads. Skipping it only makes each writer faster.
// (Power-cut durability of 'batch' is the WAL's own concern, tested there.)
const store = await openStore({ dir, create: true, keys: { provider: 'local', keyDir }, maxSegments: 3, durability: 'none' });
for (const name of COLLECTIONS) {
  if (!store.listCollections().some((c) => c.name === name)) await store.createCollection(name, { dim: DIM });
}
line('ready');

let opSeq = 0;
/** Floats that float32 holds exactly, so the parent can compare bit for bit. */
const vector = () => Array.from({ length: DIM }, () => (int(32001) - 16000) / 16);

function idsFrom(parity, n) {
  const ids = new Set();
  for (let i = 0; i < n * 3 && ids.size < n; i++) {
    const k = int(POOL / 2) * 2 + parity;
    ids.add(`r${k}`);
  }
  return [...ids];
}

function makeUpsert(c, parity) {
  const ids = idsFrom(parity, 1 + int(12));
  return {
    t: 'u',
    c,
    r: ids.map((id) => [id, vector(), int(4) === 0 ? null : { n: int(1e6), tag: `t${int(5)}`, deep: { k: [int(9), 'x'] } }]),
  };
}
const makeDelete = (c, parity) => ({ t: 'd', c, ids: idsFrom(parity, 1 + int(4)) });

async function run(op) {
  const n = ++opSeq;
  line(`b ${n} ${JSON.stringify(op)}`);
  try {
    const col = op.c === undefined ? undefined : store.collection(op.c);
    switch (op.t) {
      case 'u':
        await col.upsert(op.r.map(([id, v, m]) => (m === null ? { id, vector: v } : { id, vector: v, metadata: m })));
        break;
      case 'd':
        await col.delete(op.ids);
        break;
      case 'f':
        await col.flush();
        break;
      case 'c':
        await col.compact();
        break;
      case 'k':
        await store.rotateKek();
        break;
      case 'r':
        // DEK re-key: the collection's own API when it exists, else the keyring's.
        if (typeof col.rekey === 'function') await col.rekey();
        else await store.keys.rekey(col.info.id);
        break;
      case 'x':
        await col.reencrypt();
        break;
      default:
        throw new Error(`unknown op ${op.t}`);
    }
    line(`a ${n}`);
  } catch (err) {
    line(
      `e ${n} ${err && typeof err.code === 'string' ? err.code : 'UNTYPED'} ${String(err && err.message)
        .slice(0, 200)
        .replace(/\n/g, ' ')}`,
    );
    throw err;
  }
}

const canReencrypt = typeof store.collection('a').reencrypt === 'function';
for (let i = 0; i < budget; i++) {
  const c = pick(COLLECTIONS);
  const roll = int(100);
  if (roll < 45) await run(makeUpsert(c, int(2)));
  else if (roll < 57) await run(makeDelete(c, int(2)));
  else if (roll < 65) await run({ t: 'f', c });
  else if (roll < 68) await run({ t: 'c', c });
  else if (roll < 72) await run({ t: 'k' });
  else if (roll < 75) await run({ t: 'r', c });
  else if (roll < 77 && canReencrypt) await run({ t: 'x', c });
  else if (roll < 88) {
    // Group commit: two writers on disjoint ids at once.
    await Promise.all([run(makeUpsert(c, 0)), run(int(2) ? makeUpsert(c, 1) : makeDelete(c, 1))]);
  } else {
    // A flush or compaction racing a write.
    await Promise.all([run(int(3) ? { t: 'f', c } : { t: 'c', c }), run(makeUpsert(c, int(2)))]);
  }
}
await store.close();
line('done');
