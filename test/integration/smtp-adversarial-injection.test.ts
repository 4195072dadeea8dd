// Injection and secrets: CR/LF/NUL/<> in any command argument is refused before a byte is sent; bare CR or LF
// in a body never reaches the wire (SMTP smuggling); credentials never reach the transcript, and are never
// sent in plaintext to a host that is not loopback (that decision: smtp-client-auth-policy.test.ts).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createTranscript, SmtpConnection } from '../../lib/smtp/index.ts';
import { rawClientOptions, rawServerPerTest, rejection, sent } from '../support/adversarial.ts';
import {
  acceptMessage,
  greetAndEhlo,
  type RawConnection,
  type RawStep,
  readBdat,
  reply,
  stall,
  write,
} from '../support/raw-smtp-server.ts';

const rawServer = rawServerPerTest();
const start = (script: RawStep[]) => rawServer.start({ script });

const MESSAGE = 'Subject: x\r\n\r\nhi\r\n';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('command injection is refused before anything is sent', () => {
  const badAddresses: Array<[string, string]> = [
    ['CRLF + a command', 'a@example.test>\r\nRCPT TO:<evil@example.test'],
    ['CRLF alone', 'a@example.test\r\nRSET'],
    ['bare LF', 'a@example.test\nRSET'],
    ['bare CR', 'a@example.test\rRSET'],
    ['NUL', 'a\0b@example.test'],
    ['a closing bracket and a parameter', 'a@example.test> NOTIFY=NEVER'],
    ['an opening bracket', '<a@example.test'],
    ['a bracketed address', '<a@example.test>'],
  ];

  /** A session that accepts one message, so the only thing that stops the bad command is the client. */
  const session = () => [...greetAndEhlo(['PIPELINING']), ...acceptMessage(), stall()];

  it.each(badAddresses)('MAIL FROM with %s', async (_what, from) => {
    const { port } = await start(session());
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const error = await rejection(client.send({ from, to: ['b@example.test'] }, MESSAGE));
      expect(error.code).toBe('SMTP_INVALID_ARGUMENT');
      expect(sent(rawServer.current.connections[0]!, 'MAIL')).toEqual([]);
      // Nothing went out, so the connection is as good as before.
      expect(client.usable).toBe(true);
      const result = await client.send({ from: 'a@example.test', to: ['b@example.test'] }, MESSAGE);
      expect(result.recipients.map((r) => r.status)).toEqual(['accepted']);
    } finally {
      client.close();
    }
  });

  it.each(badAddresses)('RCPT TO with %s (after a good recipient): no MAIL, no RCPT', async (_what, to) => {
    const { port } = await start(session());
    const client = await SmtpConnection.connect(rawClientOptions(port));
    try {
      const error = await rejection(
        client.send({ from: 'a@example.test', to: ['b@example.test', to] }, MESSAGE),
      );
      expect(error.code).toBe('SMTP_INVALID_ARGUMENT');
      const connection = rawServer.current.connections[0]!;
      expect(sent(connection, 'MAIL')).toEqual([]);
      expect(sent(connection, 'RCPT')).toEqual([]);
    } finally {
      client.close();
    }
  });

  it.each([
    ['CRLF', 'client.test\r\nMAIL FROM:<x@example.test>'],
    ['LF', 'client.test\nRSET'],
    ['NUL', 'client\0.test'],
    ['a bracket', 'client.test>'],
  ])('EHLO name with %s: no connection bytes at all', async (_what, name) => {
    const { port } = await start([write('220 raw.test\r\n'), ...reply(/.*/, '250 raw.test\r\n'), stall()]);
    const error = await rejection(SmtpConnection.connect(rawClientOptions(port, { name })));
    expect(error.code).toBe('SMTP_INVALID_ARGUMENT');
    for (const connection of rawServer.current.connections) expect(connection.received().length).toBe(0);
  });

  it.each([
    ['CRLF', 'user@example.test\r\nMAIL FROM:<x@example.test>'],
    ['LF', 'user\n@example.test'],
    ['NUL', 'user\0@example.test'],
  ])('AUTH user with %s: refused, nothing of it sent', async (_what, user) => {
    const { port } = await start([
      ...greetAndEhlo(['AUTH PLAIN LOGIN']),
      ...reply(/.*/, '235 ok\r\n'),
      stall(),
    ]);
    const error = await rejection(
      SmtpConnection.connect(rawClientOptions(port, { auth: { user, pass: 'pw' } })),
    );
    expect(error.code).toBe('SMTP_INVALID_ARGUMENT');
    for (const connection of rawServer.current.connections) {
      expect(sent(connection, 'AUTH')).toEqual([]);
      expect(sent(connection, 'MAIL')).toEqual([]);
    }
  });
});

describe('SMTP smuggling: bare CR and LF never reach the wire', () => {
  /** Every CR on the wire is followed by LF, every LF preceded by CR. */
  function bareLineEnds(bytes: Buffer): number[] {
    const at: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a) at.push(i);
      if (bytes[i] === 0x0a && bytes[i - 1] !== 0x0d) at.push(i);
    }
    return at;
  }

  async function deliver(body: string | Readable): Promise<RawConnection> {
    const { port } = await start([
      ...greetAndEhlo(),
      ...acceptMessage(),
      ...reply('QUIT', '221 bye\r\n'),
      stall(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    const result = await client.send({ from: 'a@example.test', to: ['b@example.test'] }, body);
    expect(result.data?.code).toBe(250);
    await client.quit();
    const [connection] = await rawServer.current.settled(1);
    expect(connection!.error).toBeUndefined();
    return connection!;
  }

  it('"\\n.\\n", "\\r.\\r", "\\n.\\r\\n", "\\r.\\n" become CRLF . CRLF, dot-stuffed, inside one message', async () => {
    const body =
      'Subject: s\r\n\r\nline1\n.\nMAIL FROM:<a@evil.test>\r.\rRCPT TO:<b@evil.test>\r\n.\r\nDATA\n.\r\nend\r.\nlast';
    const connection = await deliver(body);

    // One payload, ending at the client's own terminator: the smuggled commands stayed inside it.
    expect(connection.bodies).toHaveLength(1);
    expect(connection.bodies[0]!.toString('latin1')).toBe(
      'Subject: s\r\n\r\nline1\r\n..\r\nMAIL FROM:<a@evil.test>\r\n..\r\nRCPT TO:<b@evil.test>\r\n..\r\n' +
        'DATA\r\n..\r\nend\r\n..\r\nlast\r\n.\r\n',
    );
    expect(bareLineEnds(connection.received())).toEqual([]);
  });

  it('with CHUNKING (BDAT) the same: line endings normalised, chunk sizes exact, and no dot-stuffing', async () => {
    const { port } = await start([
      ...greetAndEhlo(['PIPELINING', 'CHUNKING']),
      ...reply(/^MAIL FROM:/, '250 2.1.0 Ok\r\n'),
      ...reply(/^RCPT TO:/, '250 2.1.5 Ok\r\n'),
      readBdat(),
      ...reply('QUIT', '221 bye\r\n'),
      stall(),
    ]);
    const client = await SmtpConnection.connect(rawClientOptions(port));
    const body = 'Subject: s\r\n\r\nline1\n.\nMAIL FROM:<a@evil.test>\r.\rend\r.\n..two\n';
    const result = await client.send({ from: 'a@example.test', to: ['b@example.test'] }, body);
    await client.quit();

    expect(result.data?.code).toBe(250);
    const [connection] = await rawServer.current.settled(1);
    expect(connection!.error).toBeUndefined();
    expect(connection!.bodies[0]!.toString('latin1')).toBe(
      'Subject: s\r\n\r\nline1\r\n.\r\nMAIL FROM:<a@evil.test>\r\n.\r\nend\r\n.\r\n..two\r\n',
    );
    expect(bareLineEnds(connection!.received())).toEqual([]);
  });

  it('a CRLF split across stream chunks stays one line ending; a CR at a chunk end followed by "." is not bare', async () => {
    const chunks = ['Subject: s\r\n\r\nline1\r', '\n.', '\r', '\nx\r', '.\r', '\n.', '\n'];
    const connection = await deliver(Readable.from(chunks.map((c) => Buffer.from(c))));

    expect(connection.bodies[0]!.toString('latin1')).toBe(
      'Subject: s\r\n\r\nline1\r\n..\r\nx\r\n..\r\n..\r\n.\r\n',
    );
    expect(bareLineEnds(connection.received())).toEqual([]);
  });
});

describe('credentials', () => {
  const USER = 'user@example.test';
  const PASS = 'S3cret-pass!';
  const TOKEN = 'ya29.secret-token';

  /** Every form in which the secret could leak: plain, base64 alone, and inside the PLAIN / XOAUTH2 blobs. */
  const secretForms = [
    PASS,
    b64(PASS),
    b64(`\0${USER}\0${PASS}`),
    TOKEN,
    b64(`user=${USER}\x01auth=Bearer ${TOKEN}\x01\x01`),
  ];
  function expectNoSecret(text: string) {
    for (const form of secretForms) expect(text).not.toContain(form);
  }

  it('AUTH PLAIN: sent to the server, <redacted> in the transcript', async () => {
    const transcript = createTranscript();
    const { port } = await start([
      ...greetAndEhlo(['AUTH PLAIN']),
      ...reply(/^AUTH PLAIN/, '235 2.7.0 Authentication successful\r\n'),
      stall(),
    ]);
    const client = await SmtpConnection.connect(
      rawClientOptions(port, { auth: { user: USER, pass: PASS }, transcript }),
    );
    client.close();

    expect(rawServer.current.connections[0]!.received().toString()).toContain(b64(`\0${USER}\0${PASS}`));
    expectNoSecret(transcript.toString());
    expect(transcript.toString()).toContain('<redacted>');
  });

  it('AUTH LOGIN: the answers to both challenges are redacted', async () => {
    const transcript = createTranscript();
    const { port } = await start([
      ...greetAndEhlo(['AUTH LOGIN']),
      ...reply(/^AUTH LOGIN/, '334 VXNlcm5hbWU6\r\n'),
      ...reply(b64(USER), '334 UGFzc3dvcmQ6\r\n'),
      ...reply(b64(PASS), '235 2.7.0 Authentication successful\r\n'),
      stall(),
    ]);
    const client = await SmtpConnection.connect(
      rawClientOptions(port, { auth: { user: USER, pass: PASS }, transcript }),
    );
    client.close();

    expect(rawServer.current.connections[0]!.error).toBeUndefined();
    expectNoSecret(transcript.toString());
  });

  it('a refused login: neither the transcript nor the error carries the password', async () => {
    const transcript = createTranscript();
    const { port } = await start([
      ...greetAndEhlo(['AUTH PLAIN']),
      ...reply(/^AUTH PLAIN/, '535 5.7.8 Authentication credentials invalid\r\n'),
      stall(),
    ]);
    const error = await rejection(
      SmtpConnection.connect(rawClientOptions(port, { auth: { user: USER, pass: PASS }, transcript })),
    );

    expect(error).toMatchObject({ code: 'SMTP_AUTH', stage: 'auth', transient: false });
    expectNoSecret(transcript.toString());
    expectNoSecret(`${error.message} ${error.stack} ${JSON.stringify(error)}`);
  });

  it('XOAUTH2 refused with a JSON challenge: the token and the challenge are redacted', async () => {
    const transcript = createTranscript();
    const challenge = b64('{"status":"401","schemes":"bearer","scope":"https://mail.example.test/"}');
    const { port } = await start([
      ...greetAndEhlo(['AUTH XOAUTH2']),
      ...reply(/^AUTH XOAUTH2/, `334 ${challenge}\r\n`),
      ...reply('', '535 5.7.8 Username and Password not accepted\r\n'),
      stall(),
    ]);
    const error = await rejection(
      SmtpConnection.connect(
        rawClientOptions(port, { auth: { user: USER, accessToken: TOKEN }, transcript }),
      ),
    );

    expect(error.code).toBe('SMTP_AUTH');
    expectNoSecret(transcript.toString());
    expect(transcript.toString()).not.toContain(challenge);
  });
});

describe('plaintext AUTH to loopback', () => {
  const authSession = () => [
    ...greetAndEhlo(['AUTH PLAIN LOGIN']),
    ...reply(/^AUTH /, '235 2.7.0 ok\r\n'),
    ...acceptMessage(),
    stall(),
  ];

  it('is allowed (the local relay case)', async () => {
    const { port } = await start(authSession());
    const client = await SmtpConnection.connect(
      rawClientOptions(port, { auth: { user: 'u', pass: 'plain-pw' } }),
    );
    client.close();
    expect(sent(rawServer.current.connections[0]!, 'AUTH')).toHaveLength(1);
  });
});
