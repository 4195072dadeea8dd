// A TCP proxy on loopback that delays every chunk by a fixed time in each direction (a WAN-like RTT
// between a client and a local SMTP server) and logs when each chunk arrived, per direction, so the
// runner can count how often the client had to wait for the server (see round-trips.ts).
import { connect, createServer, type Server, type Socket } from 'node:net';

export type Direction = 'client' | 'server';

/** One chunk as the proxy received it: who sent it, when (epoch ms), how many octets. */
export interface ChunkEvent {
  from: Direction;
  at: number;
  bytes: number;
}

export interface DelayProxy {
  port: number;
  /** Every chunk of every connection accepted so far, in arrival order. */
  events(): readonly ChunkEvent[];
  /** Forgets the events logged so far (called before each measured run). */
  reset(): void;
  close(): Promise<void>;
}

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Relays `from` to `to`, each chunk `delayMs` after it arrived. Timers of the same duration fire in
 * the order they were set, so the byte order is kept; the proxy buffers without limit (bench-sized data).
 */
function relay(
  from: Socket,
  to: Socket,
  delayMs: number,
  direction: Direction,
  log: (event: ChunkEvent) => void,
) {
  let pending = 0;
  let ended = false;
  from.on('data', (chunk: Buffer) => {
    log({ from: direction, at: epochNow(), bytes: chunk.length });
    pending++;
    setTimeout(() => {
      pending--;
      if (!to.destroyed) to.write(chunk);
      if (ended && pending === 0) to.end();
    }, delayMs);
  });
  from.on('end', () => {
    ended = true;
    if (pending === 0) setTimeout(() => to.end(), delayMs);
  });
}

export function startDelayProxy(options: {
  upstreamHost: string;
  upstreamPort: number;
  /** One way; the round-trip time added is twice this. */
  delayMs: number;
}): Promise<DelayProxy> {
  let log: ChunkEvent[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: options.upstreamHost, port: options.upstreamPort });
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      // A reset on either side ends both; the bench client reports its own error.
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const record = (event: ChunkEvent) => log.push(event);
    relay(client, upstream, options.delayMs, 'client', record);
    relay(upstream, client, options.delayMs, 'server', record);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('proxy: no TCP address');
      resolve({
        port: address.port,
        events: () => log,
        reset: () => {
          log = [];
        },
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
