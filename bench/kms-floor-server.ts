/**
 * The floors under the key-service benchmark: a server that reads each
 * request body and answers a fixed JSON of the key service's answer size
 * after one event-loop turn (where the service's group-committed audit write
 * would answer), with no signature check, policy, cryptography or audit.
 * `--transport node` (default) is bare node:http, the leanest stock server;
 * `--transport lean` is the key service's own transport
 * (src/kms/http-server.ts). Their CPU per request is what HTTP and loopback
 * TCP cost alone, shown beside the service so the service's own share is
 * apart. Prints `{"ready":true,"pids":[...]}` once listening.
 */
import { createServer } from 'node:http';
import { createHttpServer } from '../src/kms/http-server.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const port = Number(arg('port'));
const answer = JSON.stringify({
  CiphertextBlob: Buffer.alloc(118, 7).toString('base64'),
  KeyId: 'arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000000',
  Plaintext: Buffer.alloc(32, 9).toString('base64'),
});
const headers = ['Content-Type', 'application/x-amz-json-1.1', 'x-amzn-RequestId', 'floor'];
if (arg('transport') === 'lean') {
  const lean = createHttpServer({
    maxBodyBytes: 1024 * 1024,
    onRequest: (_req, reply) => setImmediate(() => reply(200, headers, answer)),
    onReject: (r, _remote, reply) => reply(r.status, headers, '{}'),
  });
  await lean.listen(port, '127.0.0.1');
  process.stdout.write(`${JSON.stringify({ ready: true, pids: [process.pid] })}\n`);
  process.on('SIGTERM', () => process.exit(0));
} else {
  startNodeFloor();
}

function startNodeFloor(): void {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      setImmediate(() => {
        res.writeHead(200, [
          'Content-Type',
          'application/x-amz-json-1.1',
          'Content-Length',
          String(answer.length),
          'x-amzn-RequestId',
          'floor',
        ]);
        res.end(answer);
      });
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ ready: true, pids: [process.pid] })}\n`));
  process.on('SIGTERM', () => process.exit(0));
}
