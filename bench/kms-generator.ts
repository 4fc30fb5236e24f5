/**
 * A light load generator for the key service: signs one GenerateDataKey and
 * one Decrypt request once (SigV4, as any client would), checks one round
 * trip, then replays the two pre-built request buffers over `--concurrency`
 * keep-alive connections, alternating them, for `--seconds` (or until
 * `--requests` answers). Each connection keeps `--depth` requests in flight
 * (1 by default: what an SDK client does; more is HTTP/1.1 pipelining).
 *
 * The generator shares the machine with the server, so its own cost is kept
 * small: no HTTP client, no per-request allocation beyond the socket's chunks;
 * answers are framed by their Content-Length and only the status line is
 * read. Its CPU is reported so it can be shown apart from the server's.
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
const depth = Math.max(1, Math.min(Number(arg('depth', '1')), 64));
const maxRequests = Math.min(Number(arg('requests', '10000000')), 10_000_000);
const keyId = arg('key');
const region = arg('region', 'us-east-1');
const credentials = { accessKeyId: process.env.VS_BENCH_AK!, secretAccessKey: process.env.VS_BENCH_SK! };
const context = { 'vectorseal:store': 'bench', 'vectorseal:collection': 'c', 'vectorseal:dek-version': '1' };
const CRLF2 = Buffer.from('\r\n\r\n');
const LENGTH = Buffer.from('content-length:');

function request(target: string, body: string): Buffer {
  const headers = signKmsRequest({ host: url.host, region, target, body, credentials });
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(
    `POST / HTTP/1.1\r\n${lines.join('\r\n')}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: keep-alive\r\n\r\n${body}`,
  );
}

/** Lowercase ASCII letters in place of uppercase, for a case-insensitive header search on a copy. */
function lowerAscii(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = 0; i < out.length; i++) {
    const c = out[i]!;
    if (c >= 65 && c <= 90) out[i] = c + 32;
  }
  return out;
}

/**
 * Splits answers out of a connection's byte stream. `onAnswer` gets each
 * status and, when `keepBody`, the body. Returns the feeder for 'data'.
 */
function framer(onAnswer: (status: number, body?: Buffer) => void, keepBody: boolean): (chunk: Buffer) => void {
  let buf: Buffer | undefined;
  return (chunk) => {
    buf = buf === undefined ? chunk : Buffer.concat([buf, chunk]);
    let off = 0;
    for (;;) {
      const end = buf.indexOf(CRLF2, off);
      if (end < 0) break;
      const head = lowerAscii(buf.subarray(off, end));
      const at = head.indexOf(LENGTH);
      const length = at < 0 ? 0 : Number.parseInt(head.toString('latin1', at + LENGTH.length, at + LENGTH.length + 12), 10);
      if (buf.length < end + 4 + length) break;
      const status = Number(buf.toString('latin1', off + 9, off + 12));
      onAnswer(status, keepBody ? buf.subarray(end + 4, end + 4 + length) : undefined);
      off = end + 4 + length;
    }
    buf = off === buf.length ? undefined : buf.subarray(off);
  };
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

/** One request on a fresh connection, answer read whole (the set-up round trip). */
async function once(req: Buffer): Promise<{ status: number; body: string }> {
  const s = await open();
  try {
    return await new Promise((resolve, reject) => {
      s.on(
        'data',
        framer((status, body) => resolve({ status, body: body!.toString('utf8') }), true),
      );
      s.once('error', reject);
      s.write(req);
    });
  } finally {
    s.destroy();
  }
}

const gdk = request('GenerateDataKey', JSON.stringify({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
const first = await once(gdk);
if (first.status !== 200) throw new Error(`GenerateDataKey failed: ${first.body}`);
const blob = (JSON.parse(first.body) as { CiphertextBlob: string }).CiphertextBlob;
const decrypt = request('Decrypt', JSON.stringify({ CiphertextBlob: blob, KeyId: keyId, EncryptionContext: context }));
const check = await once(decrypt);
if (check.status !== 200) throw new Error(`Decrypt failed: ${check.body}`);
// Both orders of the pair, repeated `depth` times: one write puts a connection's whole window on the wire.
const windows = [0, 1].map((start) => Buffer.concat(Array.from({ length: depth }, (_, i) => ((start + i) % 2 === 0 ? gdk : decrypt))));

const sockets = await Promise.all(Array.from({ length: concurrency }, open));
let ok = 0;
let errors = 0;
let sent = 0;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const deadline = Date.now() + seconds * 1000;
await Promise.all(
  sockets.map(
    (s, i) =>
      new Promise<void>((resolve, reject) => {
        let inFlight = 0;
        let turn = i % 2;
        const refill = (): void => {
          if (Date.now() >= deadline || sent >= maxRequests) {
            if (inFlight === 0) {
              s.destroy();
              resolve();
            }
            return;
          }
          // A window goes out whole once the previous one is answered, so `depth` stays the number in flight.
          if (inFlight > 0) return;
          s.write(windows[turn]!);
          turn ^= depth % 2;
          inFlight = depth;
          sent += depth;
        };
        s.on(
          'data',
          framer((status) => {
            if (status === 200) ok++;
            else errors++;
            inFlight--;
            if (inFlight === 0) refill();
          }, false),
        );
        s.once('error', reject);
        refill();
      }),
  ),
);
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ ok, errors, seconds: elapsed, depth, generatorCpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
