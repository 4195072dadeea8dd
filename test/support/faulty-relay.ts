// A relay for the pipeline fault suite: a small ESMTP server (PIPELINING) on 127.0.0.1, port 0, whose first
// connections after setMode() misbehave in one way, and whose later ones behave. It records every message it
// accepted (its final 250 sent, or — for drop-after-dot — its data taken in full), per Message-ID and recipient.
import net from 'node:net';

export type FaultMode =
  | 'none'
  | 'drop-after-mail'
  | 'drop-after-rcpt'
  | 'drop-after-data'
  | 'drop-after-dot'
  | '421-at-mail'
  | '421-at-dot'
  | '451-at-rcpt'
  | '452-at-rcpt'
  | 'stall-at-dot'
  | 'malformed-replies'
  | 'single-bytes';

export interface Accepted {
  messageId: string;
  recipients: string[];
  connection: number;
}

export interface FaultyRelay {
  port: number;
  accepted: Accepted[];
  connections(): number;
  /** From the next connection on, the first `count` connections misbehave in `mode`. */
  setMode(mode: FaultMode, count?: number): void;
  close(): Promise<void>;
}

export async function startFaultyRelay(): Promise<FaultyRelay> {
  const accepted: Accepted[] = [];
  const sockets = new Set<net.Socket>();
  let mode: FaultMode = 'none';
  let faultyLeft = 0;
  let connections = 0;

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const number = ++connections;
    const fault: FaultMode = faultyLeft > 0 ? mode : 'none';
    if (faultyLeft > 0) faultyLeft--;
    const reply = (text: string) => {
      if (socket.destroyed) return;
      if (fault === 'single-bytes') for (const byte of Buffer.from(text)) socket.write(Buffer.from([byte]));
      else socket.write(text);
    };
    let buffer = Buffer.alloc(0);
    let inData = false;
    let rcpts: string[] = [];
    let rcptInTransaction = 0;
    let stalled = false;
    const closing = () => {
      reply('421 4.7.0 faulty.test closing\r\n');
      socket.end();
    };
    reply('220 faulty.test ESMTP\r\n');

    const command = (line: string) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO')
        reply('250-faulty.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n');
      else if (verb === 'HELO') reply('250 faulty.test\r\n');
      else if (verb === 'MAIL') {
        rcpts = [];
        rcptInTransaction = 0;
        if (fault === 'drop-after-mail') return socket.destroy();
        if (fault === '421-at-mail') return closing();
        reply(fault === 'malformed-replies' ? '25O oops\r\n' : '250 2.1.0 Ok\r\n');
      } else if (verb === 'RCPT') {
        rcptInTransaction++;
        if (fault === 'drop-after-rcpt') return socket.destroy();
        if (fault === '451-at-rcpt') return reply('451 4.3.0 try later\r\n');
        if (fault === '452-at-rcpt' && rcptInTransaction > 1)
          return reply('452 4.5.3 too many recipients\r\n');
        rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
        reply('250 2.1.5 Ok\r\n');
      } else if (verb === 'DATA') {
        if (fault === 'drop-after-data') return socket.destroy();
        if (rcpts.length === 0) return reply('554 5.5.1 no valid recipients\r\n');
        inData = true;
        reply('354 go ahead\r\n');
      } else if (verb === 'RSET') reply('250 2.0.0 Ok\r\n');
      else if (verb === 'NOOP') reply('250 2.0.0 Ok\r\n');
      else if (verb === 'QUIT') {
        reply('221 2.0.0 Bye\r\n');
        socket.end();
      } else reply('502 5.5.2 not implemented\r\n');
    };

    const endOfData = (body: string) => {
      inData = false;
      const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(body)?.[1] ?? '';
      const record = () => accepted.push({ messageId, recipients: [...rcpts], connection: number });
      if (fault === 'drop-after-dot') {
        // The relay has it; the client never hears the 250.
        record();
        return socket.destroy();
      }
      if (fault === '421-at-dot') return closing();
      // A stalled server answers nothing more, the next pipelined commands included.
      if (fault === 'stall-at-dot') {
        stalled = true;
        return;
      }
      record();
      reply('250 2.0.0 Ok: queued\r\n');
    };

    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (stalled) return;
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const body = buffer.subarray(0, end).toString('utf8');
          buffer = buffer.subarray(end + 5);
          endOfData(body);
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString('utf8');
        buffer = buffer.subarray(eol + 2);
        command(line);
        if (socket.destroyed) return;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted,
    connections: () => connections,
    setMode(next, count = 1) {
      mode = next;
      faultyLeft = count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
