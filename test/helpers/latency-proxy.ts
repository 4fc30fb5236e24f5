import { connect, createServer, type Server, type Socket } from 'node:net';

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: hand this to a client instead of the upstream. */
  url: string;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy to `upstream` (host:port) that holds every byte coming
 * back from it for `delayMs` before passing it on, in order. A client behind
 * it sees a slow network for real: its reads, and the events a watch streams
 * to it, arrive late, while requests reach the upstream at once.
 */
export async function startLatencyProxy(upstream: string, delayMs: number): Promise<LatencyProxy> {
  const url = new URL(upstream);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const remote = connect(Number(url.port), url.hostname);
    sockets.add(client).add(remote);
    client.pipe(remote);
    // Timers of one delay fire in the order they were set, so the stream stays in order.
    remote.on('data', (chunk: Buffer) => setTimeout(() => client.writable && client.write(chunk), delayMs));
    remote.on('end', () => setTimeout(() => client.end(), delayMs));
    const drop = (): void => {
      client.destroy();
      remote.destroy();
      sockets.delete(client);
      sockets.delete(remote);
    };
    client.on('error', drop).on('close', drop);
    remote.on('error', drop).on('close', () => setTimeout(drop, delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('latency proxy has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
