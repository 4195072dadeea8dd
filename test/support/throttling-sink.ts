// A relay that throttles, for the rate-limit tests (issue 7 §3): an in-process `smtp-server` on 127.0.0.1,
// port 0, plain SMTP, no AUTH, that accepts every message but answers a MAIL FROM with
// `421 4.7.0 Too many messages, slow down` — and closes the connection, as 421 means (RFC 5321 §3.8) — when
// `maxPerSecond` messages were already accepted in the trailing window (1000 ms). Transactions in progress on
// other connections (MAIL accepted, no final reply yet) count too, so pipelined or concurrent senders cannot
// slip past the limit between MAIL and end of data: accepted messages in any window ≤ maxPerSecond.
// Every accepted message is recorded with its time and envelope.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ThrottlingSinkOptions {
  /** Messages the sink accepts in any trailing window before it answers 421. */
  maxPerSecond: number;
  /** The window, ms. Default 1000. */
  windowMs?: number;
  /** The sink's clock, epoch ms; default Date.now. Tests inject one to step time without sleeping. */
  clock?: () => number;
  /** The refusal's text after the code. Default '4.7.0 Too many messages, slow down'. */
  refusal?: string;
}

export interface SinkMessage {
  /** Sink clock when the end-of-data 250 was sent. */
  at: number;
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
}

export interface ThrottlingSink {
  host: string;
  port: number;
  /** Every accepted message, in the order accepted. */
  readonly accepted: readonly SinkMessage[];
  /** MAIL FROM commands answered with 421 so far. */
  readonly refusedCount: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** The most messages accepted within any window [t, t + ms) (0 when none). */
  maxAcceptedInAnyWindow(ms: number): number;
  close(): Promise<void>;
}

export const SINK_REFUSAL = '4.7.0 Too many messages, slow down';

export async function startThrottlingSink(options: ThrottlingSinkOptions): Promise<ThrottlingSink> {
  const { maxPerSecond } = options;
  if (!(Number.isInteger(maxPerSecond) && maxPerSecond >= 1)) {
    throw new RangeError(`maxPerSecond must be an integer ≥ 1, got ${maxPerSecond}`);
  }
  const windowMs = options.windowMs ?? 1000;
  const clock = options.clock ?? Date.now;
  const refusal = options.refusal ?? SINK_REFUSAL;
  const accepted: SinkMessage[] = [];
  /** Sessions with a transaction between an accepted MAIL FROM and its end-of-data reply. */
  const inFlight = new Set<string>();
  let refusedCount = 0;
  let connections = 0;

  const acceptedInTrailingWindow = (now: number): number => {
    let count = 0;
    for (let i = accepted.length - 1; i >= 0 && accepted[i]!.at > now - windowMs; i--) count++;
    return count;
  };

  const server = new SMTPServer({
    secure: false,
    hideSTARTTLS: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    // A test that left a client connected must not hold close() for smtp-server's default 30 s.
    closeTimeout: 1000,
    banner: 'smtpq throttling sink',
    onConnect(_session, callback) {
      connections += 1;
      callback();
    },
    onMailFrom(_address, session, callback) {
      // A new MAIL after RSET replaces this session's transaction: it is not in flight twice.
      inFlight.delete(session.id);
      if (acceptedInTrailingWindow(clock()) + inFlight.size >= maxPerSecond) {
        refusedCount += 1;
        // smtp-server closes the connection itself after sending any 421.
        return callback(Object.assign(new Error(refusal), { responseCode: 421 }));
      }
      inFlight.add(session.id);
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        inFlight.delete(session.id);
        accepted.push({
          at: clock(),
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        callback(null, `2.0.0 Ok: queued as s${accepted.length}`);
      });
    },
    onClose(session) {
      inFlight.delete(session.id);
    },
  });
  server.on('error', () => {}); // a client that hangs up mid-session is part of the tests
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    host: '127.0.0.1',
    port,
    accepted,
    get refusedCount() {
      return refusedCount;
    },
    get connections() {
      return connections;
    },
    maxAcceptedInAnyWindow(ms: number): number {
      // Two pointers over the acceptance times, sorted: an injected clock may have been stepped back.
      const times = accepted.map((m) => m.at).sort((a, b) => a - b);
      let best = 0;
      let start = 0;
      for (let end = 0; end < times.length; end++) {
        while (times[end]! - times[start]! >= ms) start++;
        best = Math.max(best, end - start + 1);
      }
      return best;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
