// The pipelining contract on the wire, with a scripted raw server: the end of message N and the commands of
// message N+1 leave before N's reply (RFC 2920 §3.1) — a client that waited would stall the script — and a
// refused DATA leaves the recipients deferred and the next transaction starting with RSET.
import { afterEach, describe, expect, it } from 'vitest';
import { createTranscript, SmtpConnection } from '../../lib/smtp/index.ts';
import {
  expectLine,
  greetAndEhlo,
  type RawSmtpServer,
  type RawStep,
  readData,
  reply,
  startRawSmtpServer,
  write,
} from '../support/raw-smtp-server.ts';

const servers: RawSmtpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function connect(script: RawStep[]) {
  const server = await startRawSmtpServer({ script });
  servers.push(server);
  const transcript = createTranscript();
  const client = await SmtpConnection.connect({
    host: '127.0.0.1',
    port: server.port,
    tls: 'none',
    transcript,
    timeouts: { command: 3000, dataEnd: 3000 },
  });
  return { server, client, transcript };
}

const group = (): RawStep[] => [expectLine(/^MAIL FROM:/), expectLine(/^RCPT TO:/), expectLine('DATA')];

describe('pipelining on the wire', () => {
  it('sends the next MAIL…DATA before the reply to the previous end of data', async () => {
    const { server, client } = await connect([
      ...greetAndEhlo(['PIPELINING']),
      ...group(),
      write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n'),
      readData(),
      // No reply to message 1 yet: the client must already be sending message 2's commands.
      ...group(),
      write('250 2.0.0 queued as 1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n'),
      readData(),
      write('250 2.0.0 queued as 2\r\n'),
      ...reply('QUIT', '221 bye\r\n'),
    ]);
    const results = await Promise.all([
      client.send({ from: 'a@client.test', to: ['one@server.test'] }, 'Subject: 1\r\n\r\none\r\n'),
      client.send({ from: 'a@client.test', to: ['two@server.test'] }, 'Subject: 2\r\n\r\ntwo\r\n'),
    ]);
    await client.quit();
    expect(results.map((r) => r.data?.lines[0])).toEqual(['2.0.0 queued as 1', '2.0.0 queued as 2']);
    const [connection] = await server.settled(1);
    expect(connection?.error).toBeUndefined();
    expect(connection?.bodies.map((b) => b.toString())).toEqual([
      'Subject: 1\r\n\r\none\r\n.\r\n',
      'Subject: 2\r\n\r\ntwo\r\n.\r\n',
    ]);
  });

  it('DATA refused: accepted recipients take its reply; the next transaction starts with RSET', async () => {
    const { server, client } = await connect([
      ...greetAndEhlo(['PIPELINING', 'ENHANCEDSTATUSCODES']),
      expectLine(/^MAIL FROM:/),
      expectLine('RCPT TO:<ok@server.test>'),
      expectLine('RCPT TO:<bad@server.test>'),
      expectLine('DATA'),
      write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n451 4.3.0 try again later\r\n'),
      expectLine('RSET'),
      ...group(),
      write('250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n'),
      readData(),
      write('250 2.0.0 queued\r\n'),
      ...reply('QUIT', '221 bye\r\n'),
    ]);
    const first = await client.send(
      { from: 'a@client.test', to: ['ok@server.test', 'bad@server.test'] },
      'Subject: 1\r\n\r\none\r\n',
    );
    expect(first.recipients).toEqual([
      {
        address: 'ok@server.test',
        status: 'deferred',
        reply: { code: 451, enhanced: '4.3.0', lines: ['4.3.0 try again later'] },
      },
      {
        address: 'bad@server.test',
        status: 'failed',
        reply: { code: 550, enhanced: '5.1.1', lines: ['5.1.1 no such user'] },
      },
    ]);
    expect(first.data?.code).toBe(451);
    expect(client.usable).toBe(true);
    const second = await client.send(
      { from: 'a@client.test', to: ['ok@server.test'] },
      'Subject: 2\r\n\r\ntwo\r\n',
    );
    expect(second.recipients[0]?.status).toBe('accepted');
    await client.quit();
    const [connection] = await server.settled(1);
    expect(connection?.error).toBeUndefined();
    expect(connection?.bodies).toHaveLength(1);
  });
});
