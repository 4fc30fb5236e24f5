/**
 * A light load generator for the key service: signs one GenerateDataKey and
 * one Decrypt request once (SigV4, as any client would) and replays them over
 * `--concurrency` keep-alive connections, one request in flight on each,
 * alternating the two. Raw HTTP/1.1 on sockets keeps the generator's own cost
 * small; its CPU is reported so it can be shown apart from the server's.
 * Prints one JSON line with the counts.
 */
import { connect, type Socket } from 'node:net';
import { signKmsRequest } from '../src/kms/sigv4-sign.js';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : process.argv[i + 1];
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const url = new URL(arg('url'));
const seconds = Math.min(Number(arg('seconds', '5')), 60);
const concurrency = Math.min(Number(arg('concurrency', '32')), 256);
const keyId = arg('key');
const region = arg('region', 'us-east-1');
const credentials = { accessKeyId: process.env.VS_BENCH_AK!, secretAccessKey: process.env.VS_BENCH_SK! };
const context = { 'vectorseal:store': 'bench', 'vectorseal:collection': 'c', 'vectorseal:dek-version': '1' };

function request(target: string, body: string): Buffer {
  const headers = signKmsRequest({ host: url.host, region, target, body, credentials });
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(`POST / HTTP/1.1\r\n${lines.join('\r\n')}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: keep-alive\r\n\r\n${body}`);
}

/** One request/response exchange on a kept-alive socket; resolves with the status and body. */
function exchange(socket: Socket, req: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      const length = m ? Number(m[1]) : 0;
      if (buf.length < end + 4 + length) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve({ status: Number(head.slice(9, 12)), body: buf.subarray(end + 4, end + 4 + length).toString('utf8') });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(req);
  });
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

const gdk = request('GenerateDataKey', JSON.stringify({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
const probe = await open();
const first = await exchange(probe, gdk);
if (first.status !== 200) throw new Error(`GenerateDataKey failed: ${first.body}`);
const blob = (JSON.parse(first.body) as { CiphertextBlob: string }).CiphertextBlob;
const decrypt = request('Decrypt', JSON.stringify({ CiphertextBlob: blob, KeyId: keyId, EncryptionContext: context }));
const check = await exchange(probe, decrypt);
if (check.status !== 200) throw new Error(`Decrypt failed: ${check.body}`);
probe.destroy();

const sockets = await Promise.all(Array.from({ length: concurrency }, open));
let ok = 0;
let errors = 0;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const deadline = Date.now() + seconds * 1000;
await Promise.all(
  sockets.map(async (s, i) => {
    let n = i;
    while (Date.now() < deadline) {
      const res = await exchange(s, n++ % 2 === 0 ? gdk : decrypt);
      if (res.status === 200) ok++;
      else errors++;
    }
    s.destroy();
  }),
);
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ ok, errors, seconds: elapsed, generatorCpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
