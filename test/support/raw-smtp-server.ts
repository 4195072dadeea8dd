// A scriptable raw SMTP peer on `node:net` for what smtp-server cannot fake: injected bytes, malformed or
// split replies, stalls, drops at an exact point, and a STARTTLS upgrade under the script's control.
// Each connection plays a script of steps in order and records every byte the client sent.
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { isLoopbackAddress } from '../../lib/smtp/credential-policy.ts';

export type RawStep =
  /** Write these buffers, each as its own write with a short pause between (so they arrive as separate reads). */
  | { kind: 'write'; chunks: Array<string | Buffer> }
  /** Wait for the client's next line (without its CRLF) and check it against the pattern. */
  | { kind: 'expect'; line: string | RegExp }
  /** Read a DATA payload up to and including CRLF.CRLF (recorded in `connection.bodies`, still stuffed). */
  | { kind: 'readData' }
  /** Read BDAT commands and their chunks up to the LAST one, answering each (RFC 3030); the chunks joined
   *  go to `connection.bodies`. */
  | { kind: 'readBdat'; chunkReply: string; lastReply: string }
  /** Close our side cleanly (FIN). */
  | { kind: 'close' }
  /** Drop the connection abruptly (RST where the platform allows). */
  | { kind: 'destroy' }
  /** Say nothing more and keep the connection open until the client or `stop()` closes it. */
  | { kind: 'stall' }
  /** Stop reading from the socket, so the client's writes back up (to provoke a data timeout). */
  | { kind: 'pauseReading' }
  /** Upgrade this connection to TLS as the server (needs `tls` in the server options). */
  | { kind: 'startTls' };

export const write = (...chunks: Array<string | Buffer>): RawStep => ({ kind: 'write', chunks });
/** `text` written `size` bytes at a time. */
export const sendSplit = (text: string | Buffer, size: number): RawStep => {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return { kind: 'write', chunks };
};
export const expectLine = (line: string | RegExp): RawStep => ({ kind: 'expect', line });
/** The usual pair: wait for a client line matching `line`, then answer with `response` in one write. */
export const reply = (line: string | RegExp, response: string | Buffer): RawStep[] => [
  expectLine(line),
  write(response),
];
export const readData = (): RawStep => ({ kind: 'readData' });
export const readBdat = (
  chunkReply = '250 2.0.0 chunk received\r\n',
  lastReply = '250 2.0.0 Ok: queued\r\n',
): RawStep => ({ kind: 'readBdat', chunkReply, lastReply });
export const close = (): RawStep => ({ kind: 'close' });
export const destroy = (): RawStep => ({ kind: 'destroy' });
export const stall = (): RawStep => ({ kind: 'stall' });
export const pauseReading = (): RawStep => ({ kind: 'pauseReading' });
export const startTls = (): RawStep => ({ kind: 'startTls' });

/** What one client connection did. */
export interface RawConnection {
  /** Every byte the client sent, in order (after TLS decryption, once upgraded). */
  received(): Buffer;
  /** `received()` split into CRLF-terminated lines (a trailing incomplete line included as is). */
  lines(): string[];
  /** Message payloads read by `readData` (as sent, terminator included) and `readBdat` (chunks joined). */
  bodies: Buffer[];
  /** A script failure (unexpected line, client closed early); undefined when the script ran as written. */
  error?: string;
  /** Index of the step the script is at (equals the script length once it has run to the end). */
  step: number;
  /** Settles when the connection has closed. */
  closed: Promise<void>;
}

export interface RawSmtpServer {
  port: number;
  connections: RawConnection[];
  /** Resolves when `count` connections have been accepted and all of them have closed. */
  settled(count?: number): Promise<RawConnection[]>;
  stop(): Promise<void>;
}

export interface RawServerOptions {
  /** The steps each connection plays; a function gets the connection's index (0 for the first). */
  script: RawStep[] | ((index: number) => RawStep[]);
  /** Key and certificate for `startTls` steps. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Pause between the writes of one `write` step, in ms (default 2). */
  chunkPauseMs?: number;
  /** Loopback address to listen on (default 127.0.0.1; tests send traffic to loopback only). */
  host?: string;
}

const CRLF = Buffer.from('\r\n');
const END_OF_DATA = Buffer.from('\r\n.\r\n');

/** Starts the server on port 0 (127.0.0.1 unless `host` says otherwise). */
export async function startRawSmtpServer(options: RawServerOptions): Promise<RawSmtpServer> {
  if (options.host !== undefined && !isLoopbackAddress(options.host)) {
    throw new Error(`raw SMTP server: ${options.host} is not a loopback address (tests stay on loopback)`);
  }
  const connections: RawConnection[] = [];
  const sockets = new Set<net.Socket>();
  const waiters: Array<() => void> = [];
  const notify = () => {
    for (const wake of waiters.splice(0)) wake();
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    const index = connections.length;
    const script = typeof options.script === 'function' ? options.script(index) : options.script;
    const connection = playScript(socket, script, options);
    connections.push(connection);
    connection.closed.then(() => {
      sockets.delete(socket);
      notify();
    });
    notify();
  });
  server.listen(0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;

  return {
    port,
    connections,
    async settled(count = 1) {
      for (;;) {
        const seen = connections.slice(0, count);
        if (seen.length === count) {
          await Promise.all(seen.map((c) => c.closed));
          return seen;
        }
        await new Promise<void>((wake) => waiters.push(wake));
      }
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function playScript(raw: net.Socket, script: RawStep[], options: RawServerOptions): RawConnection {
  const chunkPauseMs = options.chunkPauseMs ?? 2;
  const receivedChunks: Buffer[] = [];
  let pending = Buffer.alloc(0); // received but not yet consumed by an expect/readData step
  let wakeReader: (() => void) | undefined;
  let ended = false;
  let socket: net.Socket = raw;
  raw.setNoDelay(true);

  const onData = (chunk: Buffer) => {
    receivedChunks.push(chunk);
    pending = Buffer.concat([pending, chunk]);
    wakeReader?.();
  };
  const onEnd = () => {
    ended = true;
    wakeReader?.();
  };

  let resolveClosed!: () => void;
  const connection: RawConnection = {
    received: () => Buffer.concat(receivedChunks),
    lines: () => splitLines(Buffer.concat(receivedChunks)),
    bodies: [],
    step: 0,
    closed: new Promise<void>((resolve) => {
      resolveClosed = resolve;
    }),
  };

  const attach = (s: net.Socket) => {
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('close', onEnd);
    s.on('error', () => {}); // resets by the client are part of what the tests provoke
  };
  attach(raw);
  raw.on('close', () => resolveClosed());

  /** Waits until `find(pending)` returns an end index, then consumes up to it. */
  const take = async (find: (buffer: Buffer) => number): Promise<Buffer | undefined> => {
    for (;;) {
      const end = find(pending);
      if (end >= 0) {
        const taken = pending.subarray(0, end);
        pending = pending.subarray(end);
        return taken;
      }
      if (ended) return undefined;
      await new Promise<void>((wake) => {
        wakeReader = wake;
      });
      wakeReader = undefined;
    }
  };

  /** The next CRLF-terminated line without its CRLF; undefined when the client closed first. */
  const readLine = async (): Promise<string | undefined> => {
    const line = await take((b) => {
      const at = b.indexOf(CRLF);
      return at < 0 ? -1 : at + 2;
    });
    return line?.subarray(0, -2).toString('latin1');
  };

  const run = async () => {
    for (const step of script) {
      switch (step.kind) {
        case 'write':
          for (const [i, chunk] of step.chunks.entries()) {
            if (i > 0) await pause(chunkPauseMs);
            if (socket.destroyed) return;
            socket.write(chunk);
          }
          break;
        case 'expect': {
          const text = await readLine();
          if (text === undefined) throw new Error(`client closed while ${describe(step.line)} was expected`);
          const matches = typeof step.line === 'string' ? text === step.line : step.line.test(text);
          if (!matches)
            throw new Error(`expected ${describe(step.line)}, client sent ${JSON.stringify(text)}`);
          break;
        }
        case 'readData': {
          // The payload may be empty, in which case the terminator is just ".\r\n".
          const body = await take((b) => {
            if (b.subarray(0, 3).equals(Buffer.from('.\r\n'))) return 3;
            const at = b.indexOf(END_OF_DATA);
            return at < 0 ? -1 : at + END_OF_DATA.length;
          });
          if (body === undefined) throw new Error('client closed during the DATA payload');
          connection.bodies.push(body);
          break;
        }
        case 'readBdat': {
          const chunks: Buffer[] = [];
          for (let last = false; !last; ) {
            const command = await readLine();
            const match = command === undefined ? null : /^BDAT (\d+)( LAST)?$/i.exec(command);
            if (!match) throw new Error(`expected BDAT, client sent ${JSON.stringify(command)}`);
            const size = Number(match[1]);
            const chunk = await take((b) => (b.length >= size ? size : -1));
            if (chunk === undefined) throw new Error('client closed during a BDAT chunk');
            chunks.push(chunk);
            last = match[2] !== undefined;
            socket.write(last ? step.lastReply : step.chunkReply);
          }
          connection.bodies.push(Buffer.concat(chunks));
          break;
        }
        case 'close':
          socket.end();
          return;
        case 'destroy':
          // Reset the TCP socket itself (a TLS socket has no resetAndDestroy of its own).
          raw.resetAndDestroy();
          return;
        case 'stall':
          return;
        case 'pauseReading':
          socket.pause();
          break;
        case 'startTls': {
          if (!options.tls) throw new Error('startTls step needs the tls option');
          // Bytes the client sent before the handshake would be a client bug; keep them recorded only.
          pending = Buffer.alloc(0);
          raw.removeListener('data', onData);
          const secure = new tls.TLSSocket(raw, { isServer: true, ...options.tls });
          attach(secure);
          await Promise.race([once(secure, 'secure'), once(secure, 'close')]);
          if (secure.destroyed) throw new Error('TLS handshake failed');
          socket = secure;
          break;
        }
      }
      connection.step++;
    }
  };

  run().catch((error: Error) => {
    connection.error = error.message;
    socket.destroy();
  });
  return connection;
}

function splitLines(bytes: Buffer): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let at = bytes.indexOf(CRLF); at >= 0; at = bytes.indexOf(CRLF, start)) {
    lines.push(bytes.subarray(start, at).toString('latin1'));
    start = at + 2;
  }
  if (start < bytes.length) lines.push(bytes.subarray(start).toString('latin1'));
  return lines;
}

const describe = (line: string | RegExp) => (typeof line === 'string' ? JSON.stringify(line) : String(line));
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The greeting and an EHLO reply advertising `extensions` (one per line, e.g. 'PIPELINING', 'SIZE 1000'). */
export function greetAndEhlo(extensions: string[] = []): RawStep[] {
  const lines = ['raw.test', ...extensions];
  const ehloReply = lines.map((line, i) => `250${i === lines.length - 1 ? ' ' : '-'}${line}\r\n`).join('');
  return [write('220 raw.test ESMTP\r\n'), ...reply(/^EHLO /, ehloReply)];
}

/** A non-pipelined transaction for one recipient, accepted at every step. */
export function acceptMessage(): RawStep[] {
  return [
    ...reply(/^MAIL FROM:/, '250 2.1.0 Ok\r\n'),
    ...reply(/^RCPT TO:/, '250 2.1.5 Ok\r\n'),
    ...reply('DATA', '354 End data with <CR><LF>.<CR><LF>\r\n'),
    readData(),
    write('250 2.0.0 Ok: queued\r\n'),
  ];
}
