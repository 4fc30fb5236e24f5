import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { type HttpRejection, isRejection, parseRequestHead, type RequestHead, scanPartialHead } from './http-parser.js';

/**
 * The key service's HTTP/1.1 transport, on node:net (or node:tls): a lean
 * server for a JSON RPC protocol, in place of node:http, whose request and
 * response objects and streams cost more per request than the service's own
 * work once that was trimmed. What it does:
 *
 * - heads parsed strictly (http-parser.ts) within a size limit; bodies by
 *   Content-Length only, within `maxBodyBytes`;
 * - keep-alive and pipelining: requests of one connection are handed to the
 *   service as they arrive (up to `maxPipelined` unanswered), and their
 *   answers leave in request order; every answer ready in one event-loop turn
 *   leaves in one write per connection;
 * - HTTP/1.0 (keep-alive only when asked), `Connection: close`,
 *   `Expect: 100-continue`, HEAD answered without a body;
 * - deadlines, not inactivity timers, against slow clients: a head must be
 *   whole within `headersTimeoutMs` of its first byte, a body within
 *   `bodyTimeoutMs` of its head, and a connection idle for `idleTimeoutMs`
 *   is closed; a client that stops reading answers is cut off after
 *   `bodyTimeoutMs` too;
 * - backpressure: the connection stops reading while its write buffer is
 *   over the socket's high-water mark, or while `maxPipelined` requests wait;
 * - closing: after the answer that closes a connection, the server ends its
 *   side and discards what still arrives for up to `lingerMs`, so a client
 *   still sending an oversized body reads the answer instead of a reset.
 */

export interface HttpRequest extends RequestHead {
  body: Buffer;
  remoteAddress: string | undefined;
}

/**
 * Answers one request, once (later calls are ignored). `headers` alternate
 * names and values; Date, Content-Length and Connection are added here.
 * `close` closes the connection after this answer.
 */
export type Reply = (status: number, headers: readonly string[], body: string, close?: boolean) => void;

export interface HttpServerOptions {
  /** Serve TLS with these options (certificates, client-certificate checks); plain TCP otherwise. */
  tls?: TlsOptions;
  maxBodyBytes: number;
  /** Largest request head (request line and header fields). Default 16 KiB, as node:http. */
  maxHeadBytes?: number;
  /** Most header fields in one request. Default 100. */
  maxHeaders?: number;
  /** Default 10 s. */
  headersTimeoutMs?: number;
  /** Default 30 s. */
  bodyTimeoutMs?: number;
  /** Default 5 s, as node:http's keep-alive timeout. */
  idleTimeoutMs?: number;
  /** Unanswered requests per connection before it stops reading. Default 64. */
  maxPipelined?: number;
  /** How long a closing connection keeps discarding input. Default 2 s. */
  lingerMs?: number;
  /** A request, head and body whole. */
  onRequest(req: HttpRequest, reply: Reply): void;
  /** A request refused by the transport; the connection closes after the answer, whatever `close` says. */
  onReject(rejection: HttpRejection, remoteAddress: string | undefined, reply: Reply): void;
}

export interface HttpServer {
  /** The net.Server (a tls.Server with `tls`): node:cluster workers share its port as any other. */
  readonly server: Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting and destroys every connection. */
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const CRLF2 = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);
/** What a response header name or value may not contain: a line break would let it write a header of its own. */
const HEADER_BREAK = /[\r\n]/;

/** The Date header, formatted once per second. */
let dateSecond = -1;
let dateText = '';
function dateHeader(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

interface Slot {
  /** The serialised answer once ready; interim answers (100 Continue) are ready at once. */
  data: string | undefined;
  close: boolean;
  final: boolean;
}

type Deadline = 'none' | 'idle' | 'head' | 'body' | 'send' | 'linger';

/** Creates the transport; call `listen`. */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const limits = {
    maxBody: options.maxBodyBytes,
    maxHead: options.maxHeadBytes ?? 16 * 1024,
    maxHeaders: options.maxHeaders ?? 100,
    headersMs: options.headersTimeoutMs ?? 10_000,
    bodyMs: options.bodyTimeoutMs ?? 30_000,
    idleMs: options.idleTimeoutMs ?? 5_000,
    maxPipelined: options.maxPipelined ?? 64,
    lingerMs: options.lingerMs ?? 2_000,
  };
  const connections = new Set<Connection>();
  const onSocket = (socket: Socket): void => {
    const c = new Connection(socket, limits, options);
    connections.add(c);
    socket.once('close', () => connections.delete(c));
  };
  // Half-open: a client may send its last request and end its side; the answers it is owed still go out.
  const server: Server =
    options.tls === undefined
      ? createNetServer({ noDelay: true, allowHalfOpen: true }, onSocket)
      : // A handshake that never completes is cut off at the headers deadline, like a head that never does.
        createTlsServer({ handshakeTimeout: limits.headersMs, ...options.tls, allowHalfOpen: true }, onSocket);
  // Every TCP connection, TLS handshakes still under way included, so close() leaves none behind.
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    if (options.tls !== undefined) s.setNoDelay(true);
  });
  // Deadlines are checked on one timer for every connection, at a quarter of the shortest timeout.
  const tick = Math.max(10, Math.min(1000, Math.floor(Math.min(limits.headersMs, limits.bodyMs, limits.idleMs, limits.lingerMs) / 4)));
  let sweeper: NodeJS.Timeout | undefined;

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          sweeper = setInterval(() => {
            const now = Date.now();
            for (const c of connections) if (c.deadlineAt <= now) c.expire();
          }, tick);
          sweeper.unref();
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      if (sweeper !== undefined) clearInterval(sweeper);
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.socket.destroy();
        for (const s of sockets) s.destroy();
      });
    },
  };
}

type Limits = {
  maxBody: number;
  maxHead: number;
  maxHeaders: number;
  headersMs: number;
  bodyMs: number;
  idleMs: number;
  maxPipelined: number;
  lingerMs: number;
};

/** One client connection: its input, the answers it is owed, in order, and its deadline. */
class Connection {
  /** Input not consumed yet; it always starts at the beginning of a head (or of the awaited body). */
  private buf: Buffer | undefined;
  /** How far `buf` has been searched for the end of the head and scanned for bare line ends. */
  private searched = 0;
  /** The head whose body is awaited, with the body's parts so far. */
  private head: RequestHead | undefined;
  private parts: Buffer[] = [];
  private have = 0;
  private readonly slots: Slot[] = [];
  /** Unanswered requests. */
  private inFlight = 0;
  private out = '';
  private flushScheduled = false;
  /** No more requests are read: a close was asked for or a request refused; input is discarded. */
  private closing = false;
  private writeBlocked = false;
  private paused = false;
  private parsing = false;
  /** The closing answer is out and this side ended: input is discarded until the client ends or `lingerMs` pass. */
  private ended = false;
  /** The client ended its side. */
  private peerEnded = false;
  private deadline: Deadline = 'idle';
  deadlineAt: number;

  constructor(
    readonly socket: Socket,
    private readonly limits: Limits,
    private readonly handlers: Pick<HttpServerOptions, 'onRequest' | 'onReject'>,
  ) {
    this.deadlineAt = Date.now() + limits.idleMs;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.resume();
    });
    // A reset or a failed TLS record: nothing more can be answered on this connection.
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      // The client sent everything it will: the requests it completed are answered, then this side ends too.
      this.peerEnded = true;
      if (this.ended) socket.destroy();
      else {
        this.parse();
        this.finishIfDone();
      }
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    if (this.head !== undefined) {
      this.parts.push(chunk);
      this.have += chunk.length;
    } else {
      this.buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    }
    this.parse();
  }

  /** Consumes whole requests from the input while the connection may take more. */
  private parse(): void {
    if (this.parsing) return;
    this.parsing = true;
    try {
      while (!this.closing && !this.writeBlocked && this.inFlight < this.limits.maxPipelined) {
        if (this.head !== undefined) {
          if (!this.takeBody()) break;
          continue;
        }
        if (!this.takeHead()) break;
      }
      const blocked = this.writeBlocked || this.inFlight >= this.limits.maxPipelined;
      if (blocked && !this.paused && !this.closing) {
        this.paused = true;
        this.socket.pause();
      }
      this.setDeadline();
    } finally {
      this.parsing = false;
    }
  }

  /** Reads one head from `buf`; false when more input is needed or the connection stops reading. */
  private takeHead(): boolean {
    let buf = this.buf;
    if (buf === undefined) return false;
    // Empty lines before a request line are allowed (RFC 9112 2.2): some clients send a CRLF after a body.
    let start = 0;
    while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
    if (start > 0) {
      buf = start === buf.length ? undefined : buf.subarray(start);
      this.buf = buf;
      this.searched = 0;
      if (buf === undefined) return false;
    }
    const end = buf.indexOf(CRLF2, Math.max(0, this.searched - 3));
    if (end < 0) {
      if (buf.length > this.limits.maxHead) {
        this.refuse({
          rejected: true,
          status: 431,
          kind: 'head-too-large',
          reason: `The request head exceeds ${this.limits.maxHead} bytes`,
        });
        return false;
      }
      const fault = scanPartialHead(buf, this.searched, buf.length);
      if (fault !== undefined) {
        this.refuse(fault);
        return false;
      }
      this.searched = buf.length;
      return false;
    }
    if (end > this.limits.maxHead) {
      this.refuse({ rejected: true, status: 431, kind: 'head-too-large', reason: `The request head exceeds ${this.limits.maxHead} bytes` });
      return false;
    }
    const parsed = parseRequestHead(buf, end, this.limits.maxHeaders);
    if (isRejection(parsed)) {
      this.refuse(parsed);
      return false;
    }
    if (parsed.contentLength > this.limits.maxBody) {
      this.refuse({
        rejected: true,
        status: 413,
        kind: 'body-too-large',
        reason: `Request body exceeds ${this.limits.maxBody} bytes`,
      });
      return false;
    }
    const rest = end + 4 === buf.length ? undefined : buf.subarray(end + 4);
    this.searched = 0;
    // A whole head: its deadline is met (the next state sets its own).
    this.deadline = 'none';
    this.deadlineAt = Number.POSITIVE_INFINITY;
    if (parsed.contentLength === 0) {
      this.buf = rest;
      this.dispatch(parsed, EMPTY);
      return true;
    }
    const have = rest === undefined ? 0 : rest.length;
    if (have >= parsed.contentLength) {
      // The common case: the body arrived with its head, and is handed on without a copy.
      const body = rest!.subarray(0, parsed.contentLength);
      this.buf = have === parsed.contentLength ? undefined : rest!.subarray(parsed.contentLength);
      this.dispatch(parsed, body);
      return true;
    }
    this.buf = undefined;
    this.head = parsed;
    this.parts = rest === undefined ? [] : [rest];
    this.have = have;
    this.deadline = 'body';
    this.deadlineAt = Date.now() + this.limits.bodyMs;
    if (parsed.expectContinue) {
      this.slots.push({ data: CONTINUE, close: false, final: false });
      this.drain();
    }
    return false;
  }

  /** Completes the awaited body once enough has arrived; false while it has not. */
  private takeBody(): boolean {
    const head = this.head!;
    if (this.have < head.contentLength) return false;
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.have);
    const body = all.subarray(0, head.contentLength);
    this.buf = this.have === head.contentLength ? undefined : all.subarray(head.contentLength);
    this.head = undefined;
    this.parts = [];
    this.have = 0;
    this.deadline = 'none';
    this.deadlineAt = Number.POSITIVE_INFINITY;
    this.dispatch(head, body);
    return true;
  }

  private dispatch(head: RequestHead, body: Buffer): void {
    const slot: Slot = { data: undefined, close: !head.keepAlive, final: true };
    this.slots.push(slot);
    this.inFlight++;
    if (!head.keepAlive) this.stopReading();
    const req: HttpRequest = {
      method: head.method,
      target: head.target,
      minor: head.minor,
      rawHeaders: head.rawHeaders,
      contentLength: head.contentLength,
      keepAlive: head.keepAlive,
      expectContinue: head.expectContinue,
      body,
      remoteAddress: this.socket.remoteAddress,
    };
    const omitBody = head.method === 'HEAD';
    const keepAliveHeader = head.minor === 0 && head.keepAlive;
    this.handlers.onRequest(req, (status, headers, payload, close = false) => {
      if (slot.data !== undefined) return;
      if (close) slot.close = true;
      slot.data = serialise(status, headers, payload, slot.close ? 'close' : keepAliveHeader ? 'keep-alive' : undefined, omitBody);
      this.drain();
    });
  }

  /** Refuses the request being read: an answer from `onReject`, then the connection closes. */
  private refuse(rejection: HttpRejection): void {
    const slot: Slot = { data: undefined, close: true, final: true };
    this.slots.push(slot);
    this.inFlight++;
    this.stopReading();
    this.handlers.onReject(rejection, this.socket.remoteAddress, (status, headers, payload) => {
      if (slot.data !== undefined) return;
      slot.data = serialise(status, headers, payload, 'close', false);
      this.drain();
    });
  }

  /** No further requests are read from this connection; what arrives is discarded. */
  private stopReading(): void {
    this.closing = true;
    this.buf = undefined;
    this.head = undefined;
    this.parts = [];
  }

  /** Moves the answers that are ready, in request order, to the output; one write per event-loop turn. */
  private drain(): void {
    while (this.slots.length > 0 && this.slots[0]!.data !== undefined) {
      const slot = this.slots.shift()!;
      this.out += slot.data!;
      if (slot.final) this.inFlight--;
      if (slot.close) {
        // Requests pipelined behind a closing answer are not answered (RFC 9112 9.6).
        this.slots.length = 0;
        this.inFlight = 0;
        this.ended = true;
        break;
      }
    }
    if (this.out !== '' && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.socket.destroyed) return;
    const data = this.out;
    this.out = '';
    if (data !== '' && !this.socket.write(data)) this.writeBlocked = true;
    if (this.ended) {
      this.socket.end();
      // Reading goes on (discarding) so the client can read the answer before it sees the connection close.
      this.paused = false;
      this.socket.resume();
      this.deadline = 'linger';
      this.deadlineAt = Date.now() + this.limits.lingerMs;
      return;
    }
    this.resume();
    this.finishIfDone();
  }

  /** Ends this side once the client has ended its own and every answer owed is out. */
  private finishIfDone(): void {
    if (this.peerEnded && !this.ended && this.inFlight === 0 && this.slots.length === 0 && this.out === '' && !this.flushScheduled) {
      this.ended = true;
      this.socket.end();
    }
  }

  /** Reads again once neither the write buffer nor the pipeline limit holds the connection back. */
  private resume(): void {
    if (this.writeBlocked || this.closing || this.inFlight >= this.limits.maxPipelined) {
      this.setDeadline();
      return;
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.parse();
  }

  private setDeadline(): void {
    if (this.deadline === 'linger') return;
    let next: Deadline;
    if (this.writeBlocked) next = 'send';
    else if (this.head !== undefined) next = 'body';
    else if (this.buf !== undefined && !this.closing) next = 'head';
    else if (this.inFlight > 0 || this.closing) next = 'none';
    else next = 'idle';
    if (next === this.deadline) return;
    this.deadline = next;
    const now = Date.now();
    this.deadlineAt =
      next === 'none'
        ? Number.POSITIVE_INFINITY
        : now + (next === 'idle' ? this.limits.idleMs : next === 'head' ? this.limits.headersMs : this.limits.bodyMs);
  }

  /** The deadline passed. */
  expire(): void {
    const kind = this.deadline;
    this.deadlineAt = Number.POSITIVE_INFINITY;
    if (kind === 'head' || kind === 'body') {
      this.refuse({
        rejected: true,
        status: 408,
        kind: 'timeout',
        reason: kind === 'head' ? 'The request head did not arrive in time' : 'The request body did not arrive in time',
      });
      this.deadline = 'none';
      return;
    }
    this.socket.destroy();
  }
}

/** One answer as it goes on the wire. */
function serialise(
  status: number,
  headers: readonly string[],
  body: string,
  connection: 'close' | 'keep-alive' | undefined,
  omitBody: boolean,
): string {
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\nDate: ${dateHeader()}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (HEADER_BREAK.test(name) || HEADER_BREAK.test(value)) throw new TypeError('a response header may not contain CR or LF');
    head += `${name}: ${value}\r\n`;
  }
  head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  if (connection !== undefined) head += `Connection: ${connection}\r\n`;
  return omitBody ? `${head}\r\n` : `${head}\r\n${body}`;
}
