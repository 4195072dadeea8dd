// The relay of the pipeline benchmark: an in-process `smtp-server` on loopback that accepts every message
// (no TLS, no AUTH, no reverse lookup, the data drained unread) and counts deliveries per recipient, so the
// runner knows when all N have arrived and whether any arrived twice. Postfix's smtp-sink would be faster
// still, but it cannot say which recipients it saw; at the pipeline's rates this one is far from the limit.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface RelaySink {
  /** smtp://127.0.0.1:<port>?tls=none: the dev stack's SMTP_URL. */
  url: string;
  /** Deliveries per recipient since the last reset. */
  deliveries(): ReadonlyMap<string, number>;
  /** Distinct recipients with the prefix that received at least one message. */
  distinct(prefix: string): number;
  /** When the last message was accepted (epoch ms), 0 before any. */
  lastAt(): number;
  connections(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startRelaySink(): Promise<RelaySink> {
  let deliveries = new Map<string, number>();
  let connections = 0;
  let lastAt = 0;
  const server = new SMTPServer({
    banner: 'smtpq pipeline bench sink',
    logger: false,
    hideSTARTTLS: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    closeTimeout: 1000,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onData(stream, session, callback) {
      stream.on('end', () => {
        for (const rcpt of session.envelope.rcptTo)
          deliveries.set(rcpt.address, (deliveries.get(rcpt.address) ?? 0) + 1);
        lastAt = performance.timeOrigin + performance.now();
        callback(null, '2.0.0 Ok: accepted');
      });
      stream.resume();
    },
  });
  server.on('error', () => {}); // a client that hangs up mid-session is not the sink's problem
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}?tls=none`,
    deliveries: () => deliveries,
    distinct(prefix) {
      let n = 0;
      for (const address of deliveries.keys()) if (address.startsWith(prefix)) n++;
      return n;
    },
    lastAt: () => lastAt,
    connections: () => connections,
    reset() {
      deliveries = new Map();
      connections = 0;
      lastAt = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
