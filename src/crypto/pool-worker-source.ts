/**
 * Source of a page-crypto worker, run with `new Worker(source, { eval: true })`.
 *
 * It is a string (valid as CommonJS and as an ES module) rather than a module file so that the same pool
 * works from the compiled package and from TypeScript sources under test
 * runners, which cannot start a `.ts` worker. It loads the native addon named
 * in workerData (or, without one, uses node:crypto per chunk, byte-identical),
 * and answers jobs: seal or open a range of pages between two
 * SharedArrayBuffer views. The AEAD key arrives in a per-worker shared slot,
 * is copied into the cipher context and the slot is zeroed at once.
 */
export const POOL_WORKER_SOURCE = String.raw`
'use strict';
// Dynamic import() works whether Node evaluates this as CommonJS or as an ES
// module (flags such as --input-type=module are inherited by workers).
// Messages posted before the listener is attached wait in the port.
Promise.all([import('node:worker_threads'), import('node:crypto'), import('node:module')]).then(([threads, nodeCrypto, nodeModule]) => {
const { parentPort, workerData } = threads;
const { createCipheriv, createDecipheriv } = nodeCrypto;
const CHUNK = 16384, TAG = 16, SEALED = CHUNK + TAG, NONCE = 12;
const addon = workerData.addonPath ? nodeModule.createRequire(workerData.addonPath)(workerData.addonPath) : null;
const keySlot = new Uint8Array(workerData.keySlot);

function nonceOf(base, counter, out) {
  out.set(base);
  let c = counter;
  for (let i = NONCE - 1; i >= NONCE - 5 && c > 0; i--) {
    out[i] ^= c % 256;
    c = Math.floor(c / 256);
  }
  return out;
}

// The node:crypto fallback: the same loop as src/crypto/node-engine.ts.
function nodeCipher(key) {
  const nonce = Buffer.alloc(NONCE);
  return {
    seal(base, counter, pt, out) {
      let i = 0, o = 0, index = counter;
      do {
        const n = Math.min(CHUNK, pt.length - i);
        const c = createCipheriv('aes-256-gcm', key, nonceOf(base, index, nonce));
        const body = c.update(pt.subarray(i, i + n));
        c.final();
        out.set(body, o);
        out.set(c.getAuthTag(), o + n);
        i += n; o += n + TAG; index++;
      } while (i < pt.length);
      return o;
    },
    open(base, counter, ct, out) {
      let i = 0, o = 0, index = counter;
      do {
        const n = Math.min(SEALED, ct.length - i);
        if (n < TAG) return -(index - counter) - 1;
        const d = createDecipheriv('aes-256-gcm', key, nonceOf(base, index, nonce));
        d.setAuthTag(ct.subarray(i + n - TAG, i + n));
        const body = d.update(ct.subarray(i, i + n - TAG));
        try { d.final(); } catch { body.fill(0); return -(index - counter) - 1; }
        out.set(body, o);
        body.fill(0);
        i += n; o += n - TAG; index++;
      } while (i < ct.length);
      return o;
    },
    dispose() { key.fill(0); },
  };
}

function nativeCipher(key) {
  const h = addon.cipher(key);
  return {
    seal: (base, counter, pt, out) => addon.seal(h, base, counter, pt, out),
    open: (base, counter, ct, out) => addon.open(h, base, counter, ct, out),
    dispose: () => addon.dispose(h),
  };
}

// Pages of job.pageSize plaintext bytes, page p numbered counter + p * chunksPerPage.
function run(cipher, job) {
  const { op, base, counter, input, out, pageSize } = job;
  if (pageSize % CHUNK === 0) return op === 'seal' ? cipher.seal(base, counter, input, out) : cipher.open(base, counter, input, out);
  const chunksPerPage = Math.ceil(pageSize / CHUNK);
  const sealedPage = pageSize + chunksPerPage * TAG;
  const inPage = op === 'seal' ? pageSize : sealedPage;
  const outPage = op === 'seal' ? sealedPage : pageSize;
  let written = 0;
  for (let p = 0, at = 0; at < input.length || (p === 0 && input.length === 0); p++, at += inPage) {
    const r = (op === 'seal' ? cipher.seal : cipher.open)(
      base,
      counter + p * chunksPerPage,
      input.subarray(at, Math.min(input.length, at + inPage)),
      out.subarray(p * outPage),
    );
    if (r < 0) return -(p * chunksPerPage + (-r - 1)) - 1;
    written += r;
  }
  return written;
}

parentPort.on('message', (job) => {
  let cipher;
  try {
    cipher = addon ? nativeCipher(keySlot) : nodeCipher(Buffer.from(keySlot));
    keySlot.fill(0);
    const result = run(cipher, job);
    parentPort.postMessage({ id: job.id, result });
  } catch (err) {
    keySlot.fill(0);
    parentPort.postMessage({ id: job.id, error: String((err && err.message) || err) });
  } finally {
    if (cipher) cipher.dispose();
  }
});
});
`;
