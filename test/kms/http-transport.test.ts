import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { createHttpServer, type HttpRequest, type HttpServer, type HttpServerOptions, type Reply } from '../../src/kms/http-server.js';
import type { HttpRejection } from '../../src/kms/http-parser.js';
import { signKmsRequest } from '../../src/kms/sigv4-sign.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';
import { ADMIN, REGION, startHarness, type Harness } from './helpers.js';

/**
 * The key service's HTTP/1.1 transport (src/kms/http-server.ts) under
 * hostile and strange clients, over real loopback sockets: bytes one at a
 * time, pipelined bursts, request-smuggling shapes, oversized heads and
 * bodies, slow clients, clients that do not read; then the key service
 * itself on it (pipelined signed requests, curl --aws-sigv4, 404/405).
 */

const run = promisify(execFile);

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits a byte stream of HTTP answers (framed by Content-Length; interim 1xx answers have none). */
function parseAnswers(data: Buffer): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = data.toString('latin1', at, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    const length = status < 200 ? 0 : Number(headers['content-length'] ?? 0);
    out.push({ status, headers, body: data.toString('utf8', end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

/** A raw client: what it sent, and every byte it got until the server closed (or `waitMs` passed). */
class RawClient {
  readonly socket: Socket;
  private chunks: Buffer[] = [];
  readonly closed: Promise<void>;
  serverEnded = false;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (c: Buffer) => this.chunks.push(c));
    this.socket.on('end', () => {
      this.serverEnded = true;
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  ready(): Promise<void> {
    return new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  answers(): Answer[] {
    return parseAnswers(this.received());
  }

  /** Waits until `n` answers arrived or `ms` passed. */
  async waitAnswers(n: number, ms = 5000): Promise<Answer[]> {
    const until = Date.now() + ms;
    while (Date.now() < until && this.answers().length < n) await sleep(5);
    return this.answers();
  }

  /** Waits for the server to close the connection, at most `ms`; true if it did. */
  async waitClosed(ms = 5000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(ms).then(() => false)]);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function request(opts: { method?: string; target?: string; headers?: string[]; body?: string; version?: string } = {}): string {
  const body = opts.body ?? '';
  const headers = opts.headers ?? ['Host: t', `Content-Length: ${Buffer.byteLength(body)}`];
  const line = `${opts.method ?? 'POST'} ${opts.target ?? '/'} ${opts.version ?? 'HTTP/1.1'}`;
  return `${line}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
}

interface TestServer {
  port: number;
  http: HttpServer;
  requests: HttpRequest[];
  rejections: HttpRejection[];
  /** Socket writes the server made per connection, by remote port. */
  writes: Map<number, number>;
}

const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** A transport whose handler echoes what it parsed (answered on the next turn, as the service's audit does). */
async function startTransport(
  over: Partial<HttpServerOptions> & { answer?: (req: HttpRequest, reply: Reply, index: number) => void } = {},
): Promise<TestServer> {
  const requests: HttpRequest[] = [];
  const rejections: HttpRejection[] = [];
  const writes = new Map<number, number>();
  const answer =
    over.answer ??
    ((req: HttpRequest, reply: Reply) =>
      setImmediate(() =>
        reply(
          200,
          ['Content-Type', 'application/json'],
          JSON.stringify({ method: req.method, target: req.target, body: req.body.toString('latin1') }),
        ),
      ));
  const http = createHttpServer({
    maxBodyBytes: 1024,
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    ...over,
    onRequest: (req, reply) => {
      requests.push(req);
      answer(req, reply, requests.length - 1);
    },
    onReject: (rejection, _remote, reply) => {
      rejections.push(rejection);
      reply(
        rejection.status,
        ['Content-Type', 'application/json'],
        JSON.stringify({ __type: 'ValidationException', message: rejection.reason }),
      );
    },
  });
  http.server.on('connection', (s: Socket) => {
    const write = s.write.bind(s) as (...a: unknown[]) => boolean;
    const port = s.remotePort!;
    writes.set(port, 0);
    (s as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => {
      writes.set(port, (writes.get(port) ?? 0) + 1);
      return write(...a);
    };
  });
  servers.push(http);
  const address = await http.listen(0, '127.0.0.1');
  return { port: address.port, http, requests, rejections, writes };
}

async function client(port: number): Promise<RawClient> {
  const c = new RawClient(port);
  await c.ready();
  return c;
}

describe('framing', () => {
  it('a request delivered one byte at a time is read whole, and so is its body', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    const bytes = Buffer.from(request({ body: '{"a":"b"}', headers: ['Host: t', 'X-Long: ' + 'v'.repeat(300), 'Content-Length: 9'] }));
    for (const b of bytes) {
      c.socket.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    const [a] = await c.waitAnswers(1);
    expect(a!.status).toBe(200);
    expect(JSON.parse(a!.body)).toEqual({ method: 'POST', target: '/', body: '{"a":"b"}' });
    expect(t.requests[0]!.rawHeaders).toEqual(['Host', 't', 'X-Long', 'v'.repeat(300), 'Content-Length', '9']);
    c.socket.destroy();
  });

  it('a pipelined burst is answered in request order, in one write, even when answers are ready out of order', async () => {
    const t = await startTransport({
      // The first request is answered last.
      answer: (req, reply, i) => setTimeout(() => reply(200, [], req.target), i === 0 ? 40 : 0),
    });
    const c = await client(t.port);
    const burst = Array.from({ length: 20 }, (_, i) => request({ target: `/${i}`, body: `b${i}` })).join('');
    c.socket.write(burst);
    const answers = await c.waitAnswers(20);
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 20 }, (_, i) => `/${i}`));
    // Nineteen answers waited for the first one; all twenty left together.
    expect(t.writes.get(c.socket.localPort!)).toBe(1);
    c.socket.destroy();
  });

  it('a body split across packets, and empty lines before a request line, are accepted', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    const r = request({ body: 'x'.repeat(600) });
    c.socket.write(`\r\n${r.slice(0, r.length - 300)}`);
    await sleep(20);
    c.socket.write(r.slice(r.length - 300));
    const [a] = await c.waitAnswers(1);
    expect(JSON.parse(a!.body).body).toBe('x'.repeat(600));
    c.socket.destroy();
  });

  it('HEAD gets the head without the body; HTTP/1.0 closes unless it asks for keep-alive', async () => {
    const t = await startTransport();
    const head = await client(t.port);
    head.socket.write(request({ method: 'HEAD' }) + request({ target: '/after' }));
    const answers = await head.waitAnswers(2);
    expect(answers[0]!.status).toBe(200);
    // The HEAD answer declares its length but carries no body, so the next answer parses right after it.
    expect(Number(answers[0]!.headers['content-length'])).toBeGreaterThan(0);
    expect(JSON.parse(answers[1]!.body).target).toBe('/after');
    head.socket.destroy();

    const old = await client(t.port);
    old.socket.write(request({ version: 'HTTP/1.0', headers: ['Content-Length: 0'] }));
    expect(await old.waitClosed()).toBe(true);
    expect(old.answers()[0]!.headers.connection).toBe('close');

    const kept = await client(t.port);
    kept.socket.write(request({ version: 'HTTP/1.0', headers: ['Connection: keep-alive', 'Content-Length: 0'] }));
    await kept.waitAnswers(1);
    expect(kept.answers()[0]!.headers.connection).toBe('keep-alive');
    kept.socket.write(request({ version: 'HTTP/1.0', headers: ['Connection: keep-alive', 'Content-Length: 0'], target: '/2' }));
    expect((await kept.waitAnswers(2)).length).toBe(2);
    kept.socket.destroy();
  });

  it('Connection: close answers that request, ignores what was pipelined after it, and closes', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    c.socket.write(request({ headers: ['Host: t', 'Connection: close', 'Content-Length: 0'] }) + request({ target: '/never' }));
    expect(await c.waitClosed()).toBe(true);
    expect(c.answers().length).toBe(1);
    expect(c.answers()[0]!.headers.connection).toBe('close');
    expect(t.requests.map((r) => r.target)).toEqual(['/']);
  });

  it('a client that ends its side after a request still gets the answer', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    c.socket.end(request({ body: 'last' }));
    expect(await c.waitClosed()).toBe(true);
    expect(JSON.parse(c.answers()[0]!.body).body).toBe('last');
  });

  it('Expect: 100-continue gets the interim answer before the body is sent', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    c.socket.write(request({ headers: ['Host: t', 'Expect: 100-continue', 'Content-Length: 4'] }));
    const [interim] = await c.waitAnswers(1);
    expect(interim!.status).toBe(100);
    expect(t.requests.length).toBe(0);
    c.socket.write('body');
    const answers = await c.waitAnswers(2);
    expect(answers[1]!.status).toBe(200);
    expect(JSON.parse(answers[1]!.body).body).toBe('body');
    c.socket.destroy();
  });
});

describe('request smuggling and malformed heads: 400 (or the status named) and the connection closes', () => {
  const cases: [string, string, number][] = [
    [
      'Content-Length and Transfer-Encoding',
      request({ headers: ['Host: t', 'Content-Length: 4', 'Transfer-Encoding: chunked'], body: '0\r\n\r\n' }),
      400,
    ],
    ['Transfer-Encoding alone', request({ headers: ['Host: t', 'Transfer-Encoding: chunked'], body: '0\r\n\r\n' }), 411],
    [
      'a duplicate Content-Length, even an equal one',
      request({ headers: ['Host: t', 'Content-Length: 2', 'Content-Length: 2'], body: 'ab' }),
      400,
    ],
    ['a Content-Length list', request({ headers: ['Host: t', 'Content-Length: 2, 2'], body: 'ab' }), 400],
    ['a signed Content-Length', request({ headers: ['Host: t', 'Content-Length: +2'], body: 'ab' }), 400],
    ['a hex Content-Length', request({ headers: ['Host: t', 'Content-Length: 0x2'], body: 'ab' }), 400],
    ['an empty Content-Length', request({ headers: ['Host: t', 'Content-Length:'] }), 400],
    ['obs-fold', request({ headers: ['Host: t', 'X-A: one', ' two', 'Content-Length: 0'] }), 400],
    ['bare LF line ends', 'POST / HTTP/1.1\nHost: t\nContent-Length: 0\n\n', 400],
    ['a bare LF inside the head', 'POST / HTTP/1.1\r\nHost: t\nX: y\r\nContent-Length: 0\r\n\r\n', 400],
    ['a bare CR inside a value', 'POST / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n', 400],
    ['a NUL in a value', request({ headers: ['Host: t', 'X: a\u0000b', 'Content-Length: 0'] }), 400],
    ['a control character in a value', request({ headers: ['Host: t', 'X: a\u0001b', 'Content-Length: 0'] }), 400],
    ['non-ASCII in a header name', request({ headers: ['Host: t', 'X-\u00e9: a', 'Content-Length: 0'] }), 400],
    ['whitespace before the colon', request({ headers: ['Host: t', 'Content-Length : 0'] }), 400],
    ['a header line without a colon', request({ headers: ['Host: t', 'NoColon', 'Content-Length: 0'] }), 400],
    ['no Host on HTTP/1.1', request({ headers: ['Content-Length: 0'] }), 400],
    ['two Hosts', request({ headers: ['Host: a', 'Host: b', 'Content-Length: 0'] }), 400],
    ['a request line with two spaces', 'POST  / HTTP/1.1\r\nHost: t\r\n\r\n', 400],
    ['a target with non-ASCII', 'POST /\u00e9 HTTP/1.1\r\nHost: t\r\n\r\n', 400],
    ['a lowercase version', 'POST / http/1.1\r\nHost: t\r\n\r\n', 400],
    ['HTTP/2.0', 'POST / HTTP/2.0\r\nHost: t\r\n\r\n', 505],
    ['an unsupported expectation', request({ headers: ['Host: t', 'Expect: 200-ok', 'Content-Length: 0'] }), 417],
    ['garbage', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u01fc\u0003\u0003\r\n\r\n', 400],
  ];
  for (const [name, bytes, status] of cases) {
    it(name, async () => {
      const t = await startTransport();
      const c = await client(t.port);
      // A well-formed request smuggled after the bad one must never be served.
      c.socket.write(Buffer.concat([Buffer.from(bytes, 'latin1'), Buffer.from(request({ target: '/smuggled' }))]));
      expect(await c.waitClosed()).toBe(true);
      const answers = c.answers();
      expect(answers.length).toBe(1);
      expect(answers[0]!.status).toBe(status);
      expect(answers[0]!.headers.connection).toBe('close');
      expect(JSON.parse(answers[0]!.body).__type).toBe('ValidationException');
      expect(t.requests.length).toBe(0);
      expect(t.rejections.length).toBe(1);
    });
  }

  it('a bare LF is refused as soon as it arrives, not at the headers timeout', async () => {
    const t = await startTransport({ headersTimeoutMs: 60_000 });
    const c = await client(t.port);
    c.socket.write('POST / HTTP/1.1\nHost: t\n');
    expect(await c.waitClosed(1000)).toBe(true);
    expect(c.answers()[0]!.status).toBe(400);
  });
});

describe('limits and deadlines', () => {
  it('a head over 16 KiB gets 431, also one that never ends; more than 100 fields gets 431', async () => {
    const t = await startTransport();
    const big = await client(t.port);
    big.socket.write(request({ headers: ['Host: t', `X: ${'a'.repeat(17 * 1024)}`, 'Content-Length: 0'] }));
    expect(await big.waitClosed()).toBe(true);
    expect(big.answers()[0]!.status).toBe(431);
    const endless = await client(t.port);
    endless.socket.write(`POST / HTTP/1.1\r\nHost: t\r\nX: ${'a'.repeat(20 * 1024)}`);
    expect(await endless.waitClosed()).toBe(true);
    expect(endless.answers()[0]!.status).toBe(431);
    const many = await client(t.port);
    many.socket.write(request({ headers: ['Host: t', ...Array.from({ length: 101 }, (_, i) => `X-${i}: v`)] }));
    expect(await many.waitClosed()).toBe(true);
    expect(many.answers()[0]!.status).toBe(431);
    expect(t.requests.length).toBe(0);
  });

  it('a declared body over the limit gets 413 at once; the client still sending it reads the answer, not a reset', async () => {
    const t = await startTransport();
    const c = await client(t.port);
    c.socket.write(request({ headers: ['Host: t', 'Content-Length: 2000000'] }));
    const [a] = await c.waitAnswers(1);
    expect(a!.status).toBe(413);
    // The server lingers, discarding, while the client sends the body it announced.
    for (let i = 0; i < 20; i++) c.socket.write(Buffer.alloc(64 * 1024, 0x20));
    expect(await c.waitClosed()).toBe(true);
    expect(c.answers().length).toBe(1);
    expect(t.requests.length).toBe(0);
  });

  it('slowloris: a head trickled a byte at a time gets 408 at the headers deadline, though bytes keep arriving', async () => {
    const t = await startTransport({ headersTimeoutMs: 300 });
    const c = await client(t.port);
    const started = Date.now();
    const head = `POST / HTTP/1.1\r\nHost: t\r\nX: ${'a'.repeat(200)}`;
    let i = 0;
    const timer = setInterval(() => {
      if (i < head.length && !c.socket.destroyed) c.socket.write(head[i++]!);
    }, 10);
    try {
      expect(await c.waitClosed(3000)).toBe(true);
    } finally {
      clearInterval(timer);
    }
    expect(Date.now() - started).toBeLessThan(2000);
    expect(c.answers()[0]!.status).toBe(408);
    expect(t.rejections[0]!.kind).toBe('timeout');
  });

  it('a body that stops arriving gets 408 at the body deadline; an idle connection is closed without an answer', async () => {
    const t = await startTransport({ bodyTimeoutMs: 300, idleTimeoutMs: 300 });
    const slow = await client(t.port);
    slow.socket.write(request({ headers: ['Host: t', 'Content-Length: 100'] }) + 'only part');
    expect(await slow.waitClosed(3000)).toBe(true);
    expect(slow.answers()[0]!.status).toBe(408);
    const idle = await client(t.port);
    idle.socket.write(request());
    await idle.waitAnswers(1);
    expect(await idle.waitClosed(3000)).toBe(true);
    expect(idle.answers().length).toBe(1);
  });

  it('a keep-alive client pipelining steadily for longer than the headers timeout is not cut off', async () => {
    const t = await startTransport({ headersTimeoutMs: 200, idleTimeoutMs: 200 });
    const c = await client(t.port);
    const r = request();
    let sent = 0;
    const until = Date.now() + 700;
    while (Date.now() < until) {
      // Each write ends in the middle of the next head.
      c.socket.write(r + r.slice(0, 10));
      c.socket.write(r.slice(10));
      sent += 2;
      await sleep(20);
    }
    expect((await c.waitAnswers(sent)).length).toBe(sent);
    expect(t.rejections).toEqual([]);
    c.socket.destroy();
  });

  it('backpressure: a client that does not read stops being served; once it reads, every answer arrives in order', async () => {
    const big = 'z'.repeat(256 * 1024);
    const t = await startTransport({
      answer: (req, reply) => setImmediate(() => reply(200, [], `${req.target}:${big}`)),
      maxPipelined: 4,
    });
    const c = await client(t.port);
    c.socket.pause();
    const n = 60;
    c.socket.write(Array.from({ length: n }, (_, i) => request({ target: `/${i}` })).join(''));
    await sleep(500);
    // Far fewer than 60 answers of 256 KiB fit in the socket buffers: the server stopped taking requests.
    const servedWhilePaused = t.requests.length;
    expect(servedWhilePaused).toBeLessThan(n);
    c.socket.resume();
    const answers = await c.waitAnswers(n, 20_000);
    expect(answers.map((a) => a.body.slice(0, a.body.indexOf(':')))).toEqual(Array.from({ length: n }, (_, i) => `/${i}`));
    c.socket.destroy();
  });

  it('at most maxPipelined requests of one connection wait for answers at once', async () => {
    const pending: Reply[] = [];
    const t = await startTransport({ answer: (_req, reply) => pending.push(reply), maxPipelined: 4 });
    const c = await client(t.port);
    c.socket.write(Array.from({ length: 10 }, (_, i) => request({ target: `/${i}` })).join(''));
    await sleep(100);
    expect(t.requests.length).toBe(4);
    for (const r of pending.splice(0)) r(200, [], 'ok');
    await sleep(100);
    expect(t.requests.length).toBe(8);
    for (const r of pending.splice(0)) r(200, [], 'ok');
    await sleep(100);
    for (const r of pending.splice(0)) r(200, [], 'ok');
    expect((await c.waitAnswers(10)).length).toBe(10);
    c.socket.destroy();
  });

  it('a response header carrying a line break is refused, not written', async () => {
    const errors: unknown[] = [];
    const t = await startTransport({
      answer: (_req, reply) => {
        try {
          reply(200, ['X-Injected', 'a\r\nSet-Cookie: b'], 'body');
        } catch (err) {
          errors.push(err);
          reply(500, [], 'refused');
        }
      },
    });
    const c = await client(t.port);
    c.socket.write(request());
    const [a] = await c.waitAnswers(1);
    expect(a!.status).toBe(500);
    expect(errors.length).toBe(1);
    c.socket.destroy();
  });
});

describe('TLS with client certificates', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki.cleanup());

  const tlsServer = () =>
    startTransport({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true } });

  it('a client with a certificate from the CA is served pipelined requests in order; one without gets no HTTP answer', async () => {
    const t = await tlsServer();
    const good = tlsConnect({ port: t.port, host: '127.0.0.1', ca: pki.ca, cert: pki.client.cert, key: pki.client.key });
    const got: Buffer[] = [];
    good.on('data', (d: Buffer) => got.push(d));
    await new Promise((r) => good.once('secureConnect', r));
    good.write([1, 2, 3].map((i) => request({ target: `/${i}` })).join(''));
    const until = Date.now() + 5000;
    while (parseAnswers(Buffer.concat(got)).length < 3 && Date.now() < until) await sleep(5);
    expect(parseAnswers(Buffer.concat(got)).map((a) => JSON.parse(a.body).target)).toEqual(['/1', '/2', '/3']);
    good.destroy();

    const none = tlsConnect({ port: t.port, host: '127.0.0.1', ca: pki.ca });
    const noneData: Buffer[] = [];
    none.on('data', (d: Buffer) => noneData.push(d));
    const failed = await new Promise<boolean>((resolve) => {
      none.once('error', () => resolve(true));
      none.once('close', () => resolve(true));
      none.once('secureConnect', () => none.write(request()));
      setTimeout(() => resolve(false), 5000);
    });
    expect(failed).toBe(true);
    expect(Buffer.concat(noneData).length).toBe(0);
    expect(t.requests.length).toBe(3);
  });

  it('close() returns at once with a TCP connection that never starts its handshake', async () => {
    const t = await tlsServer();
    const idle = await client(t.port);
    const started = Date.now();
    await t.http.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await idle.waitClosed(2000)).toBe(true);
  });
});

describe('the key service on the transport', () => {
  let h: Harness;
  let keyId: string;
  beforeAll(async () => {
    h = await startHarness();
    keyId = (await h.client().send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  });
  afterAll(async () => h.cleanup());

  const signed = (target: string, body: string): string => {
    const url = new URL(h.service.url);
    const headers = signKmsRequest({ host: url.host, region: REGION, target, body, credentials: ADMIN });
    const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
    return `POST / HTTP/1.1\r\n${lines.join('\r\n')}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  };

  it('pipelined, signed GenerateDataKey and Decrypt requests on one connection are all served, in order, and audited', async () => {
    const ctx = { 'vectorseal:store': 's' };
    const c = await client(h.service.port);
    c.socket.write(signed('GenerateDataKey', JSON.stringify({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ctx })));
    const [first] = await c.waitAnswers(1);
    expect(first!.status).toBe(200);
    const out = JSON.parse(first!.body) as { CiphertextBlob: string; Plaintext: string };
    const decrypt = signed('Decrypt', JSON.stringify({ CiphertextBlob: out.CiphertextBlob, EncryptionContext: ctx }));
    c.socket.write(Array.from({ length: 16 }, () => decrypt).join(''));
    const answers = (await c.waitAnswers(17)).slice(1);
    expect(answers.length).toBe(16);
    for (const a of answers) expect((JSON.parse(a.body) as { Plaintext: string }).Plaintext).toBe(out.Plaintext);
    const ids = answers.map((a) => a.headers['x-amzn-requestid']!);
    expect(new Set(ids).size).toBe(16);
    const log = await readFile(join(h.dataDir, 'audit.log'), 'utf8');
    for (const id of ids) expect(log).toContain(`"requestId":"${id}"`);
    c.socket.destroy();
  });

  it('curl --aws-sigv4 is served', async () => {
    const { stdout } = await run('curl', [
      '--silent',
      '--show-error',
      '--aws-sigv4',
      `aws:amz:${REGION}:kms`,
      '--user',
      `${ADMIN.accessKeyId}:${ADMIN.secretAccessKey}`,
      '-H',
      'Content-Type: application/x-amz-json-1.1',
      '-H',
      'X-Amz-Target: TrentService.DescribeKey',
      '--data',
      JSON.stringify({ KeyId: keyId }),
      `${h.service.url}/`,
    ]);
    expect((JSON.parse(stdout) as { KeyMetadata: { KeyId: string } }).KeyMetadata.KeyId).toBe(keyId);
  });

  it('other methods get 405 with Allow: POST, other paths 404, malformed HTTP 400, all in the AWS error shape and audited', async () => {
    const get = await fetch(`${h.service.url}/`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(((await get.json()) as { __type: string }).__type).toBe('UnknownOperationException');
    const other = await fetch(`${h.service.url}/admin`, { method: 'POST', body: '{}' });
    expect(other.status).toBe(404);
    const c = await client(h.service.port);
    c.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
    expect(await c.waitClosed()).toBe(true);
    const [bad] = c.answers();
    expect(bad!.status).toBe(400);
    expect(bad!.headers['content-type']).toBe('application/x-amz-json-1.1');
    const id = bad!.headers['x-amzn-requestid']!;
    expect(JSON.parse(bad!.body).__type).toBe('ValidationException');
    const lines = (await readFile(join(h.dataDir, 'audit.log'), 'utf8')).trim().split('\n');
    const entry = lines.map((l) => (JSON.parse(l) as { audit: Record<string, unknown> }).audit).find((a) => a.requestId === id);
    expect(entry).toMatchObject({ outcome: 'error', status: 400, errorType: 'ValidationException' });
  });
});
