/**
 * The strict HTTP/1.1 request-head parser under the key service's transport
 * (http-server.ts). It accepts one reading of a head or refuses it, so that
 * no proxy in front can frame a request differently from us (request
 * smuggling): CRLF line ends only, no obs-fold, no control characters, no
 * whitespace or non-token bytes in field names, bodies framed by exactly one
 * numeric Content-Length, and Transfer-Encoding refused outright.
 *
 * It never echoes request bytes in a rejection: reasons are fixed strings.
 */

/** A request head that parsed. Header names keep their case in `rawHeaders`, as node:http gives them. */
export interface RequestHead {
  method: string;
  /** The request target exactly as sent (origin form: path and query). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Alternating names and values (values without surrounding spaces and tabs), duplicates kept. */
  rawHeaders: string[];
  /** The declared body length (0 without Content-Length). */
  contentLength: number;
  /** Whether the connection stays open after this request (HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`). */
  keepAlive: boolean;
  /** `Expect: 100-continue` on HTTP/1.1: the client waits for an interim answer before it sends the body. */
  expectContinue: boolean;
}

/** Why a request was refused before it reached the service; the connection closes after the answer. */
export interface HttpRejection {
  rejected: true;
  status: number;
  kind: 'malformed' | 'head-too-large' | 'body-too-large' | 'length-required' | 'version' | 'expectation' | 'timeout';
  reason: string;
}

function reject(status: number, kind: HttpRejection['kind'], reason: string): HttpRejection {
  return { rejected: true, status, kind, reason };
}

/** RFC 9110 token characters (method and field names). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** The request target: visible ASCII, no spaces. */
const TARGET = /^[\x21-\x7e]+$/;
const VERSION = /^HTTP\/(\d)\.(\d)$/;
const DIGITS = /^\d{1,15}$/;

/** Removes leading and trailing spaces and tabs (the only whitespace a field value's OWS allows). */
function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && (v.charCodeAt(a) === 32 || v.charCodeAt(a) === 9)) a++;
  while (b > a && (v.charCodeAt(b - 1) === 32 || v.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}

/** Whether a comma-separated header value lists `token` (case-insensitive), as Connection and Expect do. */
function listsToken(value: string, token: string): boolean {
  for (const part of value.split(',')) if (trimOws(part).toLowerCase() === token) return true;
  return false;
}

/**
 * Checks a head's bytes in one pass: no control character but HTAB, and CR
 * only in CRLF pairs (so no bare CR or LF). A byte loop: two regular
 * expressions over the decoded text cost twice as much.
 */
function checkHeadBytes(buf: Buffer, end: number): HttpRejection | undefined {
  for (let i = 0; i < end; i++) {
    const c = buf[i]!;
    if (c >= 32 && c !== 127) continue;
    if (c === 9) continue;
    if (c === 13 && i + 1 < end && buf[i + 1] === 10) {
      i++;
      continue;
    }
    if (c === 13 || c === 10) return reject(400, 'malformed', 'Lines of the request head must end with CRLF');
    return reject(400, 'malformed', 'The request head contains a control character');
  }
  return undefined;
}

/**
 * Parses a whole request head: `buf[0..end)`, the bytes before the blank
 * line (without the final CRLF CRLF), read as latin1 (one character per byte).
 */
export function parseRequestHead(buf: Buffer, end: number, maxHeaders: number): RequestHead | HttpRejection {
  const fault = checkHeadBytes(buf, end);
  if (fault !== undefined) return fault;
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = lines[0]!;
  const sp1 = requestLine.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || requestLine.indexOf(' ', sp2 + 1) >= 0) {
    return reject(400, 'malformed', 'The request line must be: method SP target SP version');
  }
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  const version = VERSION.exec(requestLine.slice(sp2 + 1));
  if (!TOKEN.test(method) || !TARGET.test(target)) return reject(400, 'malformed', 'The request line has an invalid method or target');
  if (version === null) return reject(400, 'malformed', 'The request line has an invalid HTTP version');
  if (version[1] !== '1') return reject(505, 'version', 'Only HTTP/1.0 and HTTP/1.1 are supported');
  const minor = version[2] === '0' ? 0 : 1;
  if (lines.length - 1 > maxHeaders) return reject(431, 'head-too-large', `A request may carry at most ${maxHeaders} header fields`);

  const rawHeaders: string[] = [];
  let contentLength: string | undefined;
  let transferEncoding = false;
  let hosts = 0;
  let close = false;
  let keepAliveAsked = false;
  let expectContinue = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) return reject(400, 'malformed', 'Folded header lines (obs-fold) are not accepted');
    const colon = line.indexOf(':');
    if (colon <= 0) return reject(400, 'malformed', 'A header line must be: name ":" value');
    const name = line.slice(0, colon);
    // Also refuses whitespace before the colon, which some parsers strip and others keep.
    if (!TOKEN.test(name)) return reject(400, 'malformed', 'A header name has a character outside the token set');
    const value = trimOws(line.slice(colon + 1));
    rawHeaders.push(name, value);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') hosts++;
        break;
      case 6:
        if (name.toLowerCase() === 'expect') {
          if (value.toLowerCase() !== '100-continue') return reject(417, 'expectation', 'Only Expect: 100-continue is supported');
          expectContinue = minor === 1;
        }
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          if (listsToken(value, 'close')) close = true;
          if (listsToken(value, 'keep-alive')) keepAliveAsked = true;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          // One Content-Length, digits only: a list, a sign, a second copy (even an equal one) could frame the body twice.
          if (contentLength !== undefined) return reject(400, 'malformed', 'Content-Length appears more than once');
          if (!DIGITS.test(value)) return reject(400, 'malformed', 'Content-Length must be a decimal number');
          contentLength = value;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') transferEncoding = true;
        break;
    }
  }
  if (transferEncoding) {
    if (contentLength !== undefined) return reject(400, 'malformed', 'A request may not carry both Transfer-Encoding and Content-Length');
    return reject(411, 'length-required', 'Transfer-Encoding is not supported: send the body with a Content-Length');
  }
  if (minor === 1 && hosts !== 1) return reject(400, 'malformed', 'An HTTP/1.1 request must carry exactly one Host header');
  const length = contentLength === undefined ? 0 : Number(contentLength);
  return {
    method,
    target,
    minor,
    rawHeaders,
    contentLength: length,
    keepAlive: minor === 1 ? !close : keepAliveAsked && !close,
    expectContinue: expectContinue && length > 0,
  };
}

/**
 * Checks the bytes `from`..`to` of a head that is not whole yet for faults
 * that are already certain (a bare LF, a bare CR, a NUL), so a malformed
 * request is refused at once rather than when the head limit or the headers
 * timeout is reached. `buf[from - 1]` is looked at for a CR before an LF.
 */
export function scanPartialHead(buf: Buffer, from: number, to: number): HttpRejection | undefined {
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c === 10 && (i === 0 || buf[i - 1] !== 13)) return reject(400, 'malformed', 'Lines of the request head must end with CRLF');
    if (c === 0) return reject(400, 'malformed', 'The request head contains a control character');
    if (i > 0 && buf[i - 1] === 13 && c !== 10) return reject(400, 'malformed', 'Lines of the request head must end with CRLF');
  }
  return undefined;
}

/** Whether a value is a rejection. */
export function isRejection(v: RequestHead | HttpRejection): v is HttpRejection {
  return (v as HttpRejection).rejected === true;
}
