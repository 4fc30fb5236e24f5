/**
 * Latency of `vectorseal xks serve` under load: concurrent keep-alive HTTPS
 * clients on loopback send SigV4-signed XKS Encrypt and Decrypt calls (the
 * pair AWS KMS sends for GenerateDataKey and Decrypt) to the proxy, with the
 * key in SoftHSM2, and the p50/p99/max per call are reported against the spec's
 * 250 ms timeout.
 *
 * Baseline, in the same run and interleaved phase by phase: the leanest fair
 * alternative, a bare HTTPS JSON server on the same TLS settings that does
 * AES-256-GCM with node:crypto and a key in process memory (no HSM, no SigV4,
 * no audit line). The difference is what custody in an HSM plus the protocol
 * cost.
 *
 * Build and run from the repository root (needs softhsm2 and openssl):
 * npx tsc -p bench/tsconfig.xks-load.json && node dist/bench-xks/bench/xks-load.js
 * [--clients 16] [--seconds 5] [--rounds 3] [--fresh-connections]
 * Each client keeps one TLS connection open (as a KMS fleet host would), unless
 * --fresh-connections makes every call a new TCP+TLS handshake (as curl does).
 * Writes bench/results/xks-load.json. Loopback only; bounded in clients, time and rounds.
 * Client, proxy and SoftHSM2 share this process and the machine's cores, so
 * the figures include the load generator's own cost.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createXksCredential, startXksProxy, XksHsm } from '../src/xks/index.js';
import { createTestPki } from '../test/helpers/tls.js';
import { xksCall } from '../test/helpers/xks-client.js';

const MAX_CLIENTS = 64;
const MAX_SECONDS = 30;
const MAX_ROUNDS = 10;
const PREFIX = '/bench/kms/xks/v1';

function arg(name: string, fallback: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${name} expected a positive number`);
  return Math.min(v, max);
}

function softhsm(): { module: string; dir: string; pin: string } {
  const module = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find((p) => existsSync(p));
  if (!module) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const dir = mkdtempSync(join(tmpdir(), 'vs-xks-bench-'));
  mkdirSync(join(dir, 'tokens'), { mode: 0o700 });
  writeFileSync(
    join(dir, 'softhsm2.conf'),
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env['SOFTHSM2_CONF'] = join(dir, 'softhsm2.conf');
  const pin = randomBytes(6).toString('hex');
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--pin', pin, '--so-pin', randomBytes(6).toString('hex')], {
    stdio: 'pipe',
  });
  return { module, dir, pin };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

type Phase = { name: string; latencies: number[]; errors: number; seconds: number };

async function main(): Promise<void> {
  const clients = Math.floor(arg('clients', 16, MAX_CLIENTS));
  const seconds = arg('seconds', 5, MAX_SECONDS);
  const rounds = Math.floor(arg('rounds', 3, MAX_ROUNDS));
  const hsmDir = softhsm();
  const pki = createTestPki();
  const keys = await XksHsm.open({ module: hsmDir.module, token: 'bench', pin: hsmDir.pin, maxSessions: 16 });
  await keys.createKey('bench-key', 'encrypt-decrypt');
  const credential = createXksCredential();
  const proxy = await startXksProxy({
    hsm: keys,
    config: { uriPrefix: PREFIX, region: 'us-east-1', credentials: [credential] },
    tls: pki.server,
    auditFile: join(hsmDir.dir, 'audit.log'),
    maxInFlight: 256,
    hsmTimeoutMs: 5000,
  });

  // The baseline: same TLS, same JSON shapes, AES-GCM in process memory.
  const key = randomBytes(32);
  const baseline = createServer({ cert: pki.server.cert, key: pki.server.key, minVersion: 'TLSv1.2' }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>;
      let out: unknown;
      if (req.url!.endsWith('/encrypt')) {
        const iv = randomBytes(12);
        const c = createCipheriv('aes-256-gcm', key, iv);
        const ct = Buffer.concat([c.update(Buffer.from(body['plaintext']!, 'base64')), c.final()]);
        out = {
          ciphertext: ct.toString('base64'),
          initializationVector: iv.toString('base64'),
          authenticationTag: c.getAuthTag().toString('base64'),
        };
      } else {
        const d = createDecipheriv('aes-256-gcm', key, Buffer.from(body['initializationVector']!, 'base64'));
        d.setAuthTag(Buffer.from(body['authenticationTag']!, 'base64'));
        out = { plaintext: Buffer.concat([d.update(Buffer.from(body['ciphertext']!, 'base64')), d.final()]).toString('base64') };
      }
      const payload = JSON.stringify(out);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  await new Promise<void>((r) => baseline.listen(0, '127.0.0.1', r));
  const baselineUrl = `https://127.0.0.1:${(baseline.address() as { port: number }).port}`;

  const meta = {
    awsPrincipalArn: 'arn:aws:iam::123456789012:user/bench',
    kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/bench',
    kmsOperation: 'GenerateDataKey',
    kmsRequestId: 'bench',
  };
  const fresh = process.argv.includes('--fresh-connections');
  const one = async (url: string, agent?: Agent) => {
    const enc = await xksCall({
      url,
      path: `${PREFIX}/keys/bench-key/encrypt`,
      body: { requestMetadata: meta, plaintext: randomBytes(32).toString('base64'), encryptionAlgorithm: 'AES_GCM' },
      ca: pki.ca,
      ...credential,
      ...(agent ? { agent } : {}),
    });
    if (enc.status !== 200) throw new Error(`encrypt ${enc.status}`);
    const t1 = performance.now();
    const dec = await xksCall({
      url,
      path: `${PREFIX}/keys/bench-key/decrypt`,
      body: {
        requestMetadata: { ...meta, kmsOperation: 'Decrypt' },
        ciphertext: enc.body['ciphertext'],
        initializationVector: enc.body['initializationVector'],
        authenticationTag: enc.body['authenticationTag'],
        encryptionAlgorithm: 'AES_GCM',
      },
      ca: pki.ca,
      ...credential,
      ...(agent ? { agent } : {}),
    });
    if (dec.status !== 200) throw new Error(`decrypt ${dec.status}`);
    return t1;
  };
  // Verify both servers before timing anything.
  await one(proxy.url);
  await one(baselineUrl);

  const phase = async (name: string, url: string): Promise<Phase> => {
    const latencies: number[] = [];
    let errors = 0;
    const deadline = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        const agent = fresh ? undefined : new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
        while (Date.now() < deadline) {
          const t0 = performance.now();
          try {
            const t1 = await one(url, agent);
            const t2 = performance.now();
            latencies.push(t1 - t0, t2 - t1);
          } catch {
            errors++;
          }
        }
        agent?.destroy();
      }),
    );
    return { name, latencies, errors, seconds };
  };

  const phases: Phase[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      phases.push(await phase('xks-proxy', proxy.url));
      phases.push(await phase('baseline', baselineUrl));
    }
  } finally {
    await proxy.close();
    await keys.close();
    baseline.close();
    pki.cleanup();
    rmSync(hsmDir.dir, { recursive: true, force: true });
  }
  const summary = (name: string) => {
    const ps = phases.filter((p) => p.name === name);
    const all = ps.flatMap((p) => p.latencies).sort((a, b) => a - b);
    const secs = ps.reduce((s, p) => s + p.seconds, 0);
    return {
      calls: all.length,
      errors: ps.reduce((s, p) => s + p.errors, 0),
      callsPerSecond: Math.round(all.length / secs),
      p50Ms: +percentile(all, 50).toFixed(2),
      p99Ms: +percentile(all, 99).toFixed(2),
      maxMs: +(all.at(-1) ?? NaN).toFixed(2),
      p99PerRoundMs: ps.map(
        (p) =>
          +percentile(
            [...p.latencies].sort((a, b) => a - b),
            99,
          ).toFixed(2),
      ),
    };
  };
  const result = {
    when: new Date().toISOString(),
    clients,
    connections: fresh ? 'fresh TCP+TLS per call' : 'one keep-alive TLS connection per client',
    secondsPerPhase: seconds,
    rounds,
    specTimeoutMs: 250,
    xksProxy: summary('xks-proxy'),
    baseline: summary('baseline'),
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir('bench/results', { recursive: true });
  await writeFile(`bench/results/xks-load-c${clients}${fresh ? '-fresh' : ''}.json`, `${JSON.stringify(result, null, 2)}\n`);
}

await main();
