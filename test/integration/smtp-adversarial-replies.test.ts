// Replies the way a hostile or broken server sends them: malformed, split byte by byte, packed several to a
// segment, a refusing greeting, 421 in the middle of a session, EHLO refused (HELO fallback).
import { describe, expect, it } from 'vitest';
import { SmtpConnection, SmtpError } from '../../lib/smtp/index.ts';
import { rawClientOptions, rawServerPerTest, rejection, sent } from '../support/adversarial.ts';
import {
  acceptMessage,
  close,
  expectLine,
  greetAndEhlo,
  type RawStep,
  readData,
  reply,
  sendSplit,
  stall,
  write,
} from '../support/raw-smtp-server.ts';

const rawServer = rawServerPerTest();
const start = (script: RawStep[], chunkPauseMs?: number) =>
  rawServer.start({ script, ...(chunkPauseMs === undefined ? {} : { chunkPauseMs }) });

const MESSAGE = 'Subject: test\r\n\r\nHello\r\n';
const ENVELOPE = { from: 'a@example.test', to: ['b@example.test'] };

describe('malformed replies are SMTP_PROTOCOL errors, never a hang or a crash', () => {
  const greetings: Array<[string, string | Buffer]> = [
    ['no code', 'hello there\r\n'],
    ['a non-numeric code', '2x0 ready\r\n'],
    ['a code outside 2xx–5xx', '720 ready\r\n'],
    ['a two-digit code', '22 ready\r\n'],
    ['a bad separator after the code', '220*ready\r\n'],
    ['an empty line', '\r\n'],
  ];
  it.each(greetings)('greeting with %s', async (_what, greeting) => {
    const { port } = await start([write(greeting), stall()]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error.code).toBe('SMTP_PROTOCOL');
    expect(error.stage).toBe('greeting');
  });

  it('a line far longer than any reply (1 MiB, no CRLF)', async () => {
    const { port } = await start([write(`220 ${'x'.repeat(1024 * 1024)}`), stall()]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error.code).toBe('SMTP_PROTOCOL');
  });

  const ehloReplies: Array<[string, string]> = [
    ['a different code on the last line', '250-raw.test\r\n251 PIPELINING\r\n'],
    ['a different code on a continuation line', '250-raw.test\r\n220-PIPELINING\r\n250 SIZE 10\r\n'],
    ['a bad continuation marker', '250-raw.test\r\n250+PIPELINING\r\n250 SIZE 10\r\n'],
    ['a continuation without a code', '250-raw.test\r\nPIPELINING\r\n250 SIZE 10\r\n'],
  ];
  it.each(ehloReplies)('EHLO reply with %s', async (_what, ehloReply) => {
    const { port } = await start([
      write('220 raw.test\r\n'),
      ...reply(/^EHLO /, ehloReply),
      ...acceptMessage(),
    ]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error.code).toBe('SMTP_PROTOCOL');
    expect(error.stage).toBe('ehlo');
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
  });

  it('a malformed reply to MAIL leaves the connection unusable', async () => {
    const { port } = await start([...greetAndEhlo(), ...reply(/^MAIL /, '25O ok\r\n'), stall()]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const error = await rejection(client.send(ENVELOPE, MESSAGE));
      expect(error.code).toBe('SMTP_PROTOCOL');
      expect(error.stage).toBe('mail');
      expect(client.usable).toBe(false);
    } finally {
      client.close();
    }
  });

  it('a reply nobody asked for (unsolicited bytes before EHLO) is not taken as the EHLO reply', async () => {
    // "220 …\r\n250 …" in one segment: the 250 arrives before EHLO was sent. A client that reads it as the
    // EHLO reply is desynchronised from then on; one that notices fails with SMTP_PROTOCOL.
    const { port } = await start([
      write('220 raw.test\r\n250-raw.test\r\n250 AUTH PLAIN\r\n'),
      ...reply(/^EHLO /, '250 raw.test\r\n'),
      ...acceptMessage(),
    ]);
    const outcome = await SmtpConnection.connect(rawClientOptions(port)).then(
      (client) => {
        client.close();
        return client.extensions.auth;
      },
      (error: unknown) => error,
    );
    if (outcome instanceof SmtpError) expect(outcome.code).toBe('SMTP_PROTOCOL');
    else expect(outcome).toEqual([]); // the real EHLO reply offers no AUTH
  });
});

describe('replies split and packed', () => {
  it('replies one byte at a time still parse into the same values', async () => {
    const script = [
      sendSplit('220 raw.test ESMTP\r\n', 1),
      expectLine(/^EHLO /),
      sendSplit('250-raw.test\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n', 1),
      expectLine(/^MAIL FROM:/),
      sendSplit('250 2.1.0 Ok\r\n', 1),
      expectLine(/^RCPT TO:/),
      sendSplit('250 2.1.5 Ok\r\n', 1),
      expectLine('DATA'),
      sendSplit('354 End data with <CR><LF>.<CR><LF>\r\n', 1),
      readData(),
      sendSplit('250-2.0.0 Ok: queued\r\n250 2.0.0 as 12345\r\n', 1),
      expectLine('QUIT'),
      sendSplit('221 2.0.0 Bye\r\n', 1),
      close(),
    ];
    const { port } = await start(script, 1);

    const client = await SmtpConnection.connect(rawClientOptions(port));
    expect(client.extensions.size).toBe(1000000);
    expect(client.extensions.eightBitMime).toBe(true);
    expect(client.extensions.enhancedStatusCodes).toBe(true);
    const result = await client.send(ENVELOPE, MESSAGE);
    await client.quit();

    expect(result.recipients).toEqual([
      { address: 'b@example.test', status: 'accepted', reply: expect.objectContaining({ code: 250 }) },
    ]);
    expect(result.mail).toMatchObject({ code: 250, enhanced: '2.1.0' });
    expect(result.data).toMatchObject({ code: 250, enhanced: '2.0.0' });
    expect(result.data!.lines).toHaveLength(2);
    const [connection] = await rawServer.current.settled(1);
    expect(connection!.error).toBeUndefined();
    expect(connection!.bodies[0]!.toString()).toBe(`${MESSAGE}.\r\n`);
  });

  it('several replies in one segment (PIPELINING) are matched to their commands in order', async () => {
    const { port } = await start([
      ...greetAndEhlo(['PIPELINING', 'ENHANCEDSTATUSCODES']),
      expectLine(/^MAIL FROM:/),
      expectLine(/^RCPT TO:<b@/),
      expectLine(/^RCPT TO:<c@/),
      expectLine(/^RCPT TO:<d@/),
      expectLine('DATA'),
      write(
        '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <c@example.test>: unknown\r\n450 4.2.0 later\r\n354 go\r\n',
      ),
      readData(),
      write('250 2.0.0 Ok: queued\r\n'),
      stall(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const result = await client.send(
        { from: 'a@example.test', to: ['b@example.test', 'c@example.test', 'd@example.test'] },
        MESSAGE,
      );
      expect(result.recipients.map((r) => [r.address, r.status, r.reply.code])).toEqual([
        ['b@example.test', 'accepted', 250],
        ['c@example.test', 'failed', 550],
        ['d@example.test', 'deferred', 450],
      ]);
      expect(result.recipients[1]!.reply.enhanced).toBe('5.1.1');
      expect(client.usable).toBe(true);
    } finally {
      client.close();
    }
  });
});

describe('refusals', () => {
  it('greeting 554 is permanent', async () => {
    const { port } = await start([write('554 5.3.2 no service for you\r\n'), stall()]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error).toMatchObject({ code: 'SMTP_REPLY', stage: 'greeting', transient: false });
    expect(error.reply).toMatchObject({ code: 554, enhanced: '5.3.2' });
  });

  it('greeting 421 is transient', async () => {
    const { port } = await start([write('421 4.3.2 busy, try later\r\n'), close()]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error).toMatchObject({ code: 'SMTP_REPLY', stage: 'greeting', transient: true });
    expect(error.reply?.code).toBe(421);
  });

  it('421 to MAIL mid-session: transient, and the connection is not reused', async () => {
    const { port } = await start([
      ...greetAndEhlo(),
      ...reply(/^MAIL /, '421 4.3.2 shutting down\r\n'),
      close(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const error = await rejection(client.send(ENVELOPE, MESSAGE));
      expect(error).toMatchObject({ code: 'SMTP_REPLY', stage: 'mail', transient: true });
      expect(error.reply?.code).toBe(421);
      expect(client.usable).toBe(false);
    } finally {
      client.close();
    }
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'RCPT')).toEqual([]);
  });

  it('421 to RCPT: the recipient is deferred (or the send fails transiently) and the connection is not reused', async () => {
    const { port } = await start([
      ...greetAndEhlo(),
      ...reply(/^MAIL /, '250 ok\r\n'),
      ...reply(/^RCPT /, '421 4.3.2 shutting down\r\n'),
      close(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const outcome = await client.send(ENVELOPE, MESSAGE).catch((error: unknown) => error);
      if (outcome instanceof SmtpError) expect(outcome.transient).toBe(true);
      else
        expect((outcome as { recipients: Array<{ status: string }> }).recipients[0]!.status).toBe('deferred');
      expect(client.usable).toBe(false);
    } finally {
      client.close();
    }
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'DATA')).toEqual([]);
  });

  it('EHLO 5xx falls back to HELO, and the session works without extensions', async () => {
    const { port } = await start([
      write('220 old.test SMTP\r\n'),
      ...reply(/^EHLO /, '502 5.5.2 Error: command not recognized\r\n'),
      ...reply('HELO client.test', '250 old.test\r\n'),
      ...acceptMessage(),
      stall(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      expect(client.extensions.pipelining).toBe(false);
      const result = await client.send(ENVELOPE, MESSAGE);
      expect(result.recipients.map((r) => r.status)).toEqual(['accepted']);
    } finally {
      client.close();
    }
    const [connection] = await rawServer.current.settled(1);
    expect(connection!.error).toBeUndefined();
  });

  it('EHLO 421 is a transient failure, not a reason to try HELO', async () => {
    const { port } = await start([
      write('220 raw.test\r\n'),
      ...reply(/^EHLO /, '421 4.7.0 go away\r\n'),
      stall(),
    ]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port)));
    expect(error).toMatchObject({ code: 'SMTP_REPLY', stage: 'ehlo', transient: true });
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'HELO')).toEqual([]);
  });

  it('EHLO 5xx with TLS required: HELO has no STARTTLS, so SMTP_TLS_REQUIRED and no MAIL', async () => {
    const { port } = await start([
      write('220 old.test SMTP\r\n'),
      ...reply(/^EHLO /, '500 5.5.1 unknown\r\n'),
      ...reply(/^HELO /, '250 old.test\r\n'),
      ...acceptMessage(),
    ]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port, { tls: 'starttls' })));
    expect(error.code).toBe('SMTP_TLS_REQUIRED');
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
  });
});
