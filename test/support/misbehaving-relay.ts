// A relay for the pipeline fault suite (test/e2e/pipeline-faults.test.ts): a real ESMTP server on node:net
// (127.0.0.1, port 0; PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SIZE; no CHUNKING, so every message goes
// through DATA) whose next N connections after setMode() misbehave in one way, and whose later ones behave.
//
// What the relay took responsibility for is recorded per (Message-ID, recipient): after its 250 to the final
// dot has been written, or — in drop-after-dot — as soon as the dot was read (the relay has the message; the
// client never hears so). The faulty connections vary by their order (`variant`, 0-based) where a mode has
// more than one way to misbehave: even variants reset the connection (RST) without a reply, odd ones answer
// first and then close it (FIN); the malformed replies cycle through five malformations.
import net from 'node:net';

export type FaultMode =
  | 'none'
  /** The connection lost right at MAIL FROM (even: RST, no reply; odd: 250, then FIN). */
  | 'drop-after-mail'
  /** The connection lost at the first RCPT TO (even: RST, no reply; odd: 250, then FIN). */
  | 'drop-after-rcpt'
  /** The connection lost at DATA (even: RST, no reply; odd: 354, then FIN). */
  | 'drop-after-data'
  /** The final dot read (the relay has the message), then the connection lost without the 250 (even RST, odd FIN). */
  | 'drop-after-dot'
  /** 421 4.7.0 to MAIL FROM, then FIN. */
  | '421-at-mail'
  /** 421 4.7.0 to the final dot (the message not taken), then FIN. */
  | '421-at-dot'
  /** 451 4.3.0 to RCPT TO: even, to every one; odd, to the first of each transaction only. */
  | '451-at-rcpt'
  /** 452 to RCPT TO: even, 4.5.3 "too many recipients" after the first of each transaction; odd, 4.3.1 to every one. */
  | '452-at-rcpt'
  /** The final dot read, then nothing more: no reply, no further command read; open until the client closes. */
  | 'stall-at-dot'
  /** One malformed reply per connection: MAIL, RCPT, the final dot, EHLO, the greeting (by variant, cycling). */
  | 'malformed-replies'
  /** Every reply written one byte at a time, a write (and a millisecond) per byte; otherwise well behaved. */
  | 'single-bytes'
  /** Well behaved until the `holdAtDot`-th final dot of the connection, which gets no reply: the connection is
   *  held open, nothing more read, until the client goes away (the worker-killed test). */
  | 'hold-at-dot';

/** One recipient of one message the relay took responsibility for. */
export interface Acceptance {
  messageId: string;
  recipient: string;
  /** 1-based number of the connection it came on. */
  connection: number;
  /** That connection was one of the misbehaving ones. */
  faulty: boolean;
}

export interface RelayConnection {
  /** 1-based, in the order of accept. */
  number: number;
  mode: FaultMode;
  /** Among the faulty connections of its setMode(), 0-based. */
  variant: number;
  /** Which setMode() call it belongs to (0 before any). */
  epoch: number;
  /** The misbehaviour actually happened on it (a fault assigned to a connection that never got that far is not). */
  fired: boolean;
  /** Final dots read on it. */
  dots: number;
  /** `C:` a command (`C+` one that came in the same read as the one before: pipelined), `S:` a reply, `*` what
   *  the relay did (a fault, a hang-up). The message data is shown by its size only. */
  log: string[];
  closed: Promise<void>;
}

export interface SetModeOptions {
  /** How many of the next connections misbehave. Default 1. */
  connections?: number;
  /** hold-at-dot: the final dot (1-based, on one connection) that gets no reply. Default 1. */
  holdAtDot?: number;
}

export interface Held {
  connection: RelayConnection;
  /** Message-IDs whose final dot got its 250 on the held connection before the hold. */
  answeredBefore: string[];
}

export interface MisbehavingRelay {
  port: number;
  acceptances: Acceptance[];
  connections: RelayConnection[];
  /** From the next connection on, `connections` of them misbehave in `mode`; the ones after behave. */
  setMode(mode: FaultMode, options?: SetModeOptions): number;
  /** Resolves when a hold-at-dot connection holds (the first one since the last setMode). */
  whenHeld(): Promise<Held>;
  /** The logs of the given connections (default all), for a failure message. */
  dump(filter?: (c: RelayConnection) => boolean): string;
  close(): Promise<void>;
}

const EHLO_REPLY =
  '250-relay.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10485760\r\n';
const END_OF_DATA = Buffer.from('\r\n.\r\n');

export async function startMisbehavingRelay(): Promise<MisbehavingRelay> {
  const acceptances: Acceptance[] = [];
  const connections: RelayConnection[] = [];
  const sockets = new Set<net.Socket>();
  let mode: FaultMode = 'none';
  let faultyLeft = 0;
  let faultyGiven = 0;
  let holdAtDot = 1;
  let epoch = 0;
  let held: { promise: Promise<Held>; resolve: (held: Held) => void; done: boolean } = deferredHeld();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const faulty = faultyLeft > 0;
    if (faulty) faultyLeft--;
    let resolveClosed!: () => void;
    const c: RelayConnection = {
      number: connections.length + 1,
      mode: faulty ? mode : 'none',
      variant: faulty ? faultyGiven++ : 0,
      epoch,
      fired: false,
      dots: 0,
      log: [],
      closed: new Promise<void>((resolve) => {
        resolveClosed = resolve;
      }),
    };
    connections.push(c);
    socket.on('close', () => {
      sockets.delete(socket);
      c.log.push('* closed');
      resolveClosed();
    });
    const holdTarget = holdAtDot;
    const heldHere = held;
    const odd = c.variant % 2 === 1;
    const malformation = c.mode === 'malformed-replies' ? c.variant % 5 : -1;

    // Replies leave in order through one chain (single-bytes paces them a byte at a time).
    let out = Promise.resolve();
    /** No more input is read once the connection is hanging up, stalled or held. */
    let stopped = false;
    const fire = (what: string) => {
      c.fired = true;
      c.log.push(`* fault: ${what}`);
    };
    const say = (text: string): Promise<void> => {
      for (const line of text.split('\r\n').filter(Boolean)) c.log.push(`S: ${line}`);
      out = out.then(async () => {
        if (socket.destroyed) return;
        if (c.mode !== 'single-bytes') {
          socket.write(text);
          return;
        }
        c.fired = true;
        for (const byte of Buffer.from(text)) {
          if (socket.destroyed) return;
          socket.write(Buffer.from([byte]));
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      });
      return out;
    };
    const hangUp = (how: 'rst' | 'fin') => {
      stopped = true;
      c.log.push(`* hanging up (${how === 'rst' ? 'RST' : 'FIN'})`);
      out = out.then(() => {
        if (socket.destroyed) return;
        if (how === 'rst') socket.resetAndDestroy();
        else socket.end();
      });
    };

    let buffer = Buffer.alloc(0);
    /** A command already came in the current read: the next one was pipelined behind it. */
    let sameRead = false;
    const client = (text: string) => {
      c.log.push(`${sameRead ? 'C+' : 'C:'} ${text}`);
      sameRead = true;
    };
    let inData = false;
    let rcpts: string[] = [];
    let rcptsSeen = 0;

    const accept = (messageId: string, recipients: string[]) => {
      for (const recipient of recipients)
        acceptances.push({ messageId, recipient, connection: c.number, faulty: c.mode !== 'none' });
    };

    const command = (line: string) => {
      client(line);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') {
        if (malformation === 3) {
          fire('malformed EHLO reply (no space or hyphen after the code)');
          say('250-relay.test\r\n250*PIPELINING\r\n');
        } else say(EHLO_REPLY);
      } else if (verb === 'HELO') say('250 relay.test\r\n');
      else if (verb === 'MAIL') {
        rcpts = [];
        rcptsSeen = 0;
        if (c.mode === 'drop-after-mail') {
          fire('connection lost at MAIL');
          if (odd) say('250 2.1.0 Ok\r\n');
          return hangUp(odd ? 'fin' : 'rst');
        }
        if (c.mode === '421-at-mail') {
          fire('421 at MAIL');
          say('421 4.7.0 relay.test too busy, closing the connection\r\n');
          return hangUp('fin');
        }
        if (malformation === 0) {
          fire('malformed MAIL reply (a letter in the code)');
          return say('25O 2.1.0 Ok\r\n');
        }
        say('250 2.1.0 Ok\r\n');
      } else if (verb === 'RCPT') {
        const address = /<([^>]*)>/.exec(line)?.[1] ?? '';
        rcptsSeen++;
        if (c.mode === 'drop-after-rcpt') {
          fire('connection lost at RCPT');
          if (odd) say('250 2.1.5 Ok\r\n');
          return hangUp(odd ? 'fin' : 'rst');
        }
        if (c.mode === '451-at-rcpt' && (!odd || rcptsSeen === 1)) {
          fire('451 at RCPT');
          return say('451 4.3.0 Temporary local problem, try again later\r\n');
        }
        if (c.mode === '452-at-rcpt' && (odd || rcptsSeen > 1)) {
          fire('452 at RCPT');
          return say(odd ? '452 4.3.1 Insufficient system storage\r\n' : '452 4.5.3 Too many recipients\r\n');
        }
        if (malformation === 1) {
          fire('malformed RCPT reply (a multi-line reply that changes its code)');
          return say('250-2.1.5 Ok\r\n251 2.1.5 Ok\r\n');
        }
        rcpts.push(address);
        say('250 2.1.5 Ok\r\n');
      } else if (verb === 'DATA') {
        if (c.mode === 'drop-after-data') {
          fire('connection lost at DATA');
          if (odd) say('354 End data with <CR><LF>.<CR><LF>\r\n');
          return hangUp(odd ? 'fin' : 'rst');
        }
        // RFC 2920 §3.1: DATA after no accepted recipient is refused, not answered 354.
        if (rcpts.length === 0) return say('554 5.5.1 No valid recipients\r\n');
        inData = true;
        say('354 End data with <CR><LF>.<CR><LF>\r\n');
      } else if (verb === 'RSET') {
        rcpts = [];
        say('250 2.0.0 Ok\r\n');
      } else if (verb === 'NOOP') say('250 2.0.0 Ok\r\n');
      else if (verb === 'QUIT') {
        say('221 2.0.0 Bye\r\n');
        stopped = true;
        out = out.then(() => {
          socket.end();
        });
      } else say('502 5.5.2 Command not implemented\r\n');
    };

    const endOfData = (data: Buffer) => {
      inData = false;
      c.dots++;
      client(`<message data, ${data.length} octets> .`);
      const headers = data
        .toString('utf8')
        .split('\r\n\r\n')[0]!
        .replace(/\r\n[ \t]+/g, ' ');
      const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(headers)?.[1] ?? '';
      const recipients = [...rcpts];
      if (c.mode === 'drop-after-dot') {
        fire(`connection lost after the final dot of ${messageId} (taken, no 250)`);
        accept(messageId, recipients);
        return hangUp(odd ? 'fin' : 'rst');
      }
      if (c.mode === '421-at-dot') {
        fire('421 at the final dot');
        say('421 4.7.0 relay.test too busy, closing the connection\r\n');
        return hangUp('fin');
      }
      if (c.mode === 'stall-at-dot') {
        fire('stalled after the final dot');
        stopped = true;
        return;
      }
      if (c.mode === 'hold-at-dot' && c.dots === holdTarget && !heldHere.done) {
        fire(`holding after the final dot of ${messageId} (no reply)`);
        stopped = true;
        // The moment is reported once the replies before it are on the wire.
        out.then(() => {
          heldHere.done = true;
          heldHere.resolve({
            connection: c,
            answeredBefore: [
              ...new Set(acceptances.filter((a) => a.connection === c.number).map((a) => a.messageId)),
            ],
          });
        });
        return;
      }
      if (malformation === 2) {
        fire('malformed reply to the final dot (no code)');
        return say('2.0.0 Ok: queued\r\n');
      }
      // Taken once the 250 is written.
      say('250 2.0.0 Ok: queued\r\n').then(() => {
        if (!socket.destroyed) accept(messageId, recipients);
      });
    };

    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      sameRead = false;
      while (!stopped) {
        if (inData) {
          // The terminator right at the start (an empty body) cannot happen: every message has headers.
          const end = buffer.indexOf(END_OF_DATA);
          if (end < 0) return;
          const data = buffer.subarray(0, end);
          buffer = buffer.subarray(end + END_OF_DATA.length);
          endOfData(data);
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString('latin1');
        buffer = buffer.subarray(eol + 2);
        command(line);
      }
    });

    if (malformation === 4) {
      fire('malformed greeting (no space after the code)');
      say('220relay.test ESMTP\r\n');
    } else say('220 relay.test ESMTP\r\n');
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    acceptances,
    connections,
    setMode(next, options = {}) {
      mode = next;
      faultyLeft = next === 'none' ? 0 : (options.connections ?? 1);
      faultyGiven = 0;
      holdAtDot = options.holdAtDot ?? 1;
      held = deferredHeld();
      return ++epoch;
    },
    whenHeld: () => held.promise,
    dump(filter = () => true) {
      return connections
        .filter(filter)
        .map((c) => `connection ${c.number} (${c.mode}, variant ${c.variant}):\n  ${c.log.join('\n  ')}`)
        .join('\n');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function deferredHeld() {
  let resolve!: (held: Held) => void;
  const promise = new Promise<Held>((r) => {
    resolve = r;
  });
  return { promise, resolve, done: false };
}
