// CHUNKING (RFC 3030) framing against a small BDAT server of our own (smtp-server has no BDAT): the exact
// bytes on the wire, several transactions in flight at once, streamed bodies in chunks, refusals.
import { once } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createTranscript, type SmtpClientOptions, SmtpConnection } from '../../lib/smtp/index.ts';
import {
  greetAndEhlo,
  type RawSmtpServer,
  readBdat,
  reply,
  stall,
  startRawSmtpServer,
} from '../support/raw-smtp-server.ts';

interface BdatServer {
  port: number;
  /** Every byte each client connection sent. */
  received: Buffer[];
  messages: Array<{ from: string; to: string[]; body: Buffer }>;
  close(): Promise<void>;
}

interface BdatServerOptions {
  /** Hold every reply until this many messages have fully arrived (proves the client does not wait). */
  holdUntil?: number;
  rcpt?: (address: string) => string | undefined;
  /** Behave like a server that keeps the MAIL state of a failed BDAT LAST (RFC 3030 says it ends). */
  stickyFailure?: boolean;
}

function startBdatServer(options: BdatServerOptions = {}): Promise<BdatServer> {
  const received: Buffer[] = [];
  const messages: BdatServer['messages'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const index = received.push(Buffer.alloc(0)) - 1;
    let buffer = Buffer.alloc(0);
    let chunk: { left: number; last: boolean } | undefined;
    let tx = { from: '', to: [] as string[], parts: [] as Buffer[], open: false, refused: false };
    const fresh = () => ({
      from: '',
      to: [] as string[],
      parts: [] as Buffer[],
      open: false,
      refused: false,
    });
    const held: string[] = [];
    let sawMail = false;
    const reply = (text: string) => {
      if (options.holdUntil && sawMail && messages.length < options.holdUntil) held.push(text);
      else socket.write(held.splice(0).join('') + text);
    };
    socket.write('220 bdat.test ESMTP\r\n');
    socket.on('data', (data: Buffer) => {
      received[index] = Buffer.concat([received[index]!, data]);
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        if (chunk) {
          const take = Math.min(chunk.left, buffer.length);
          tx.parts.push(buffer.subarray(0, take));
          buffer = buffer.subarray(take);
          chunk.left -= take;
          if (chunk.left > 0) return;
          const { last } = chunk;
          chunk = undefined;
          if (!last) reply('250 2.0.0 chunk received\r\n');
          else if (tx.refused || !tx.open) reply('503 5.5.1 bad sequence of commands\r\n');
          else if (tx.to.length === 0) {
            reply('554 5.5.1 no valid recipients\r\n');
            if (options.stickyFailure) continue; // the MAIL state survives
          } else {
            messages.push({ from: tx.from, to: tx.to, body: Buffer.concat(tx.parts) });
            reply(`250 2.0.0 queued as b${messages.length}\r\n`);
          }
          if (last && !tx.refused) tx = fresh();
          if (last) tx.refused = false;
          continue;
        }
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.subarray(0, end).toString();
        buffer = buffer.subarray(end + 2);
        const [verb = ''] = line.split(' ');
        if (/^EHLO/i.test(verb))
          reply('250-bdat.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n');
        else if (verb === 'MAIL') {
          sawMail = true;
          if (tx.open) {
            tx.refused = true;
            reply('503 5.5.1 nested MAIL command\r\n');
            continue;
          }
          tx = { ...fresh(), from: /<(.*)>/.exec(line)?.[1] ?? '', open: true };
          reply('250 2.1.0 ok\r\n');
        } else if (verb === 'RCPT' && tx.refused) {
          reply('503 5.5.1 need MAIL\r\n');
        } else if (verb === 'RCPT') {
          const address = /<(.*)>/.exec(line)?.[1] ?? '';
          const refusal = options.rcpt?.(address);
          if (refusal) reply(`${refusal}\r\n`);
          else {
            tx.to.push(address);
            reply('250 2.1.5 ok\r\n');
          }
        } else if (verb === 'BDAT') {
          const [, size, last] = line.split(' ');
          chunk = { left: Number(size), last: last === 'LAST' };
        } else if (verb === 'RSET') {
          tx = fresh();
          reply('250 2.0.0 ok\r\n');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 bye\r\n');
          socket.end();
        } else reply('500 5.5.2 unknown command\r\n');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => ({
    port: (server.address() as net.AddressInfo).port,
    received,
    messages,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  }));
}

const servers: BdatServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A plaintext client of the server on `port` as the tests here connect (5 s for each reply); `extra` adds to it. */
function connectTo(port: number, extra: Partial<SmtpClientOptions> = {}): Promise<SmtpConnection> {
  return SmtpConnection.connect({
    host: '127.0.0.1',
    port,
    tls: 'none',
    name: 'client.test',
    timeouts: { command: 5000, dataEnd: 5000 },
    ...extra,
  });
}

async function setup(options: BdatServerOptions = {}, clientOptions: Partial<SmtpClientOptions> = {}) {
  const s = await startBdatServer(options);
  servers.push(s);
  const transcript = createTranscript();
  const c = await connectTo(s.port, { transcript, ...clientOptions });
  return { s, c, transcript };
}

describe('BDAT', () => {
  it('sends MAIL, RCPT and BDAT n LAST with the message in one go, without dot-stuffing', async () => {
    const { s, c } = await setup();
    expect(c.extensions.chunking).toBe(true);
    const body = 'Subject: b\n\n.not stuffed\r\nend';
    const expected = 'Subject: b\r\n\r\n.not stuffed\r\nend\r\n';
    const result = await c.send({ from: 'a@client.test', to: ['b@server.test', 'c@server.test'] }, body);
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(result.data).toMatchObject({ code: 250, enhanced: '2.0.0' });
    await c.quit();
    const size = Buffer.byteLength(expected);
    expect(s.received[0]!.toString()).toBe(
      'EHLO client.test\r\n' +
        `MAIL FROM:<a@client.test> SIZE=${size}\r\nRCPT TO:<b@server.test>\r\nRCPT TO:<c@server.test>\r\n` +
        `BDAT ${size} LAST\r\n${expected}QUIT\r\n`,
    );
    expect(s.messages[0]?.body.toString()).toBe(expected);
  });

  it('keeps several transactions in flight: nothing waits for a reply', async () => {
    // The server answers nothing until three messages are in; a client that waited would time out.
    const { s, c, transcript } = await setup({ holdUntil: 3 });
    const results = await Promise.all(
      [1, 2, 3].map((i) =>
        c.send({ from: 'a@client.test', to: [`r${i}@server.test`] }, `Subject: ${i}\r\n\r\n${i}\r\n`),
      ),
    );
    expect(results.map((r) => r.recipients[0]?.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(s.messages.map((m) => m.to[0])).toEqual(['r1@server.test', 'r2@server.test', 'r3@server.test']);
    // A BDAT LAST ends its transaction (RFC 3030), so no RSET is needed between them.
    const commands = transcript.entries.filter((e) => e.kind === 'C').map((e) => e.text.split(' ')[0]);
    expect(commands.filter((v) => v === 'RSET')).toHaveLength(0);
    await c.quit();
  });

  it('sends a message again after RSET when a server kept the state of a failed transaction in flight', async () => {
    const { s, c, transcript } = await setup({
      stickyFailure: true,
      rcpt: (a) => (a.startsWith('bad') ? '550 5.1.1 no such user' : undefined),
    });
    const [first, second] = await Promise.all([
      c.send({ from: 'a@client.test', to: ['bad@server.test'] }, 'one\r\n'),
      c.send({ from: 'a@client.test', to: ['ok@server.test'] }, 'two\r\n'),
    ]);
    expect(first.recipients[0]).toMatchObject({ status: 'failed', reply: { code: 550 } });
    expect(second.recipients[0]).toMatchObject({ status: 'accepted', reply: { code: 250 } });
    expect(s.messages.map((m) => [m.to, m.body.toString()])).toEqual([[['ok@server.test'], 'two\r\n']]);
    expect(transcript.toString()).toContain('sending the message again after RSET');
    await c.quit();
  });

  it('streams a large body as BDAT chunks and ends with LAST', async () => {
    const { s, c, transcript } = await setup();
    const line = `${'z'.repeat(70)}\n`;
    const text = line.repeat(3000); // 213,000 octets before CRLF normalisation
    const result = await c.send(
      { from: 'a@client.test', to: ['b@server.test'] },
      Readable.from([Buffer.from(text.slice(0, 100_000)), Buffer.from(text.slice(100_000))]),
    );
    expect(result.recipients[0]?.status).toBe('accepted');
    const expected = text.replace(/\n/g, '\r\n');
    expect(s.messages[0]?.body.toString()).toBe(expected);
    const headers = transcript.entries.filter((e) => e.text.startsWith('BDAT')).map((e) => e.text);
    expect(headers.length).toBeGreaterThan(1);
    expect(headers.at(-1)).toMatch(/ LAST$/);
    const sizes = headers.map((h) => Number(h.split(' ')[1]));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(Buffer.byteLength(expected));
    await c.quit();
  });

  it('reports refused recipients; all refused means no message and a clean next transaction', async () => {
    const { s, c } = await setup({
      rcpt: (a) => (a.startsWith('bad') ? '550 5.1.1 no such user' : undefined),
    });
    const first = await c.send({ from: 'a@client.test', to: ['bad@server.test'] }, 'x\r\n');
    expect(first.recipients[0]).toMatchObject({ status: 'failed', reply: { code: 550, enhanced: '5.1.1' } });
    const second = await c.send(
      { from: 'a@client.test', to: ['bad2@server.test', 'ok@server.test'] },
      'y\r\n',
    );
    expect(second.recipients.map((r) => r.status)).toEqual(['failed', 'accepted']);
    expect(s.messages.map((m) => m.to)).toEqual([['ok@server.test']]);
    expect(s.received[0]!.toString()).toContain('RSET\r\nMAIL FROM:<a@client.test>');
    await c.quit();
  });
});

describe('BDAT transcript', () => {
  const lines = (transcript: ReturnType<typeof createTranscript>) =>
    transcript.entries.map((e) => `${e.kind === '*' ? '*' : `${e.kind}:`} ${e.text}`);
  const session = (transcript: ReturnType<typeof createTranscript>) =>
    lines(transcript).filter((line) => !line.startsWith('*'));
  const EHLO = [
    'S: 220 bdat.test ESMTP',
    'C: EHLO client.test',
    'S: 250-bdat.test',
    'S: 250-PIPELINING',
    'S: 250-CHUNKING',
    'S: 250-8BITMIME',
    'S: 250 SIZE 10000000',
  ];
  const envelope = { from: 'a@client.test', to: ['b@server.test'] };

  it('in memory: the BDAT command, then the payload summary, then the replies', async () => {
    const { c, transcript } = await setup();
    await c.send(envelope, 'Subject: t\n\nhello\n');
    await c.quit();
    expect(session(transcript)).toEqual([
      ...EHLO,
      'C: MAIL FROM:<a@client.test> SIZE=21',
      'C: RCPT TO:<b@server.test>',
      'C: BDAT 21 LAST',
      'C: <message: 21 octets, 3 lines>',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 ok',
      'S: 250 2.0.0 queued as b1',
      'C: QUIT',
      'S: 221 2.0.0 bye',
    ]);
  });

  it('streamed: the BDAT command, then the payload summary', async () => {
    const { c, transcript } = await setup();
    await c.send(envelope, Readable.from([Buffer.from('Subject: t\n\n'), Buffer.from('hello\n')]));
    await c.quit();
    expect(session(transcript)).toEqual([
      ...EHLO,
      'C: MAIL FROM:<a@client.test>',
      'C: RCPT TO:<b@server.test>',
      'C: BDAT 21 LAST',
      'C: <message: 21 octets, 3 lines>',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 ok',
      'S: 250 2.0.0 queued as b1',
      'C: QUIT',
      'S: 221 2.0.0 bye',
    ]);
  });

  it('streamed in several chunks: each BDAT command, then the summary after the LAST one', async () => {
    const { c, transcript } = await setup();
    const line = `${'z'.repeat(1022)}\r\n`; // 1 KiB lines
    const parts = [line.repeat(64), line.repeat(64), line.repeat(3)].map((part) => Buffer.from(part));
    await c.send(envelope, Readable.from(parts));
    await c.quit();
    expect(session(transcript).slice(EHLO.length)).toEqual([
      'C: MAIL FROM:<a@client.test>',
      'C: RCPT TO:<b@server.test>',
      'C: BDAT 65536',
      'C: BDAT 65536',
      'C: BDAT 3072 LAST',
      'C: <message: 134144 octets, 131 lines>',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 ok',
      'S: 250 2.0.0 chunk received',
      'S: 250 2.0.0 chunk received',
      'S: 250 2.0.0 queued as b1',
      'C: QUIT',
      'S: 221 2.0.0 bye',
    ]);
  });

  it('transcriptData: each BDAT command is followed by the lines it carries', async () => {
    const { c, transcript } = await setup({}, { transcriptData: true });
    await c.send(envelope, Readable.from([Buffer.from('Subject: t\n\n'), Buffer.from('hello\n')]));
    await c.send(envelope, 'Subject: u\r\n\r\nbye\r\n');
    await c.quit();
    expect(session(transcript).slice(EHLO.length)).toEqual([
      'C: MAIL FROM:<a@client.test>',
      'C: RCPT TO:<b@server.test>',
      'C: BDAT 21 LAST',
      'C: Subject: t',
      'C: ',
      'C: hello',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 ok',
      'S: 250 2.0.0 queued as b1',
      'C: MAIL FROM:<a@client.test> SIZE=19',
      'C: RCPT TO:<b@server.test>',
      'C: BDAT 19 LAST',
      'C: Subject: u',
      'C: ',
      'C: bye',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 ok',
      'S: 250 2.0.0 queued as b2',
      'C: QUIT',
      'S: 221 2.0.0 bye',
    ]);
  });
});

describe('BDAT chunk replies of a streamed message', () => {
  let raw: RawSmtpServer | undefined;
  afterEach(async () => {
    await raw?.stop();
    raw = undefined;
  });

  async function streamTo(chunkReply: string, lastReply: string) {
    raw = await startRawSmtpServer({
      script: [
        ...greetAndEhlo(['PIPELINING', 'CHUNKING']),
        ...reply(/^MAIL FROM:/, '250 2.1.0 ok\r\n'),
        ...reply(/^RCPT TO:/, '250 2.1.5 ok\r\n'),
        readBdat(chunkReply, lastReply),
        stall(),
      ],
    });
    const c = await connectTo(raw.port);
    const line = `${'q'.repeat(1022)}\r\n`;
    const parts = [1, 2, 3].map(() => Buffer.from(line.repeat(70))); // three BDAT chunks of 70 KiB
    const sent = c.send({ from: 'a@client.test', to: ['b@server.test'] }, Readable.from(parts));
    return { c, sent };
  }

  it('the first refused chunk decides the outcome, not the LAST reply', async () => {
    const { c, sent } = await streamTo('452 4.3.1 out of room\r\n', '554 5.5.0 transaction failed\r\n');
    const result = await sent;
    expect(result.data).toMatchObject({ code: 452, enhanced: '4.3.1' });
    expect(result.recipients[0]).toMatchObject({ status: 'deferred', reply: { code: 452 } });
    c.close();
  });

  it('a 3xx to a chunk is a protocol error and the session is not reused', async () => {
    const { c, sent } = await streamTo('354 go on\r\n', '250 2.0.0 queued\r\n');
    await expect(sent).rejects.toMatchObject({ code: 'SMTP_PROTOCOL', stage: 'bdat' });
    expect(c.usable).toBe(false);
  });
});
