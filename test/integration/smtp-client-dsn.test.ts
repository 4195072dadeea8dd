// DSN (RFC 3461) and REQUIRETLS (RFC 8689) against smtp-server, which parses both: what the server received
// when it offers them, and what happens when it does not (DSN: sent without; REQUIRETLS: not sent at all).
import { describe, expect, it } from 'vitest';
import { DSN_NOT_OFFERED } from '../../lib/smtp/envelope.ts';
import { type Envelope, SmtpConnection, type Transcript } from '../../lib/smtp/index.ts';
import { sharedLocalCa } from '../../scripts/local/certs.ts';
import { greetAndEhlo, reply, startRawSmtpServer } from '../support/raw-smtp-server.ts';
import { smtpSessionsPerTest } from '../support/smtp-sessions.ts';

const sessions = smtpSessionsPerTest();

const message = 'From: a@client.test\r\nSubject: dsn\r\n\r\nbody\r\n';
const from = 'a@client.test';
const commands = (t: Transcript) => t.entries.filter((e) => e.kind === 'C').map((e) => e.text);
const dsnEnvelope: Envelope = {
  from,
  to: ['b+x@server.test', 'jörg@server.test'],
  dsn: { notify: ['success', 'failure'], ret: 'hdrs', envid: 'batch 7=ok' },
};

/** A STARTTLS session to smtp-server with its certificate verified (the test servers share one local CA). */
async function tlsSession(serverOptions: { requireTls?: boolean; dsn?: boolean }) {
  const { caPem } = await sharedLocalCa();
  return sessions.connect(
    { tls: 'starttls', ...serverOptions },
    { host: 'localhost', tls: 'starttls', ca: caPem },
  );
}

describe('DSN', () => {
  it('sends RET/ENVID on MAIL and NOTIFY/ORCPT on each RCPT, xtext-encoded, to a server offering DSN', async () => {
    const { server, connection, transcript } = await sessions.connect({ dsn: true });
    expect(connection.extensions.dsn).toBe(true);
    const result = await connection.send(dsnEnvelope, message);
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);

    expect(commands(transcript)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^MAIL FROM:<a@client.test> SMTPUTF8 RET=HDRS ENVID=batch\+207\+3Dok$/),
        'RCPT TO:<b+x@server.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@server.test',
        'RCPT TO:<jörg@server.test> NOTIFY=SUCCESS,FAILURE ORCPT=utf-8;jörg@server.test',
      ]),
    );
    // What the server decoded is what was asked for.
    const received = server.messages[0]!;
    expect(received.mailParams).toMatchObject({ RET: 'HDRS', ENVID: 'batch 7=ok' });
    expect(received.rcptParams).toEqual([
      { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;b+x@server.test' },
      { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'utf-8;jörg@server.test' },
    ]);
    expect(transcript.entries.some((e) => e.text === DSN_NOT_OFFERED)).toBe(false);
  });

  it('NOTIFY=NEVER reaches the server', async () => {
    const { server, connection } = await sessions.connect({ dsn: true });
    await connection.send({ from, to: ['b@server.test'], dsn: { notify: ['never'] } }, message);
    expect(server.messages[0]?.rcptParams).toEqual([{ NOTIFY: 'NEVER', ORCPT: 'rfc822;b@server.test' }]);
  });

  it('sends without the parameters to a server not offering DSN, and notes it in the transaction', async () => {
    const { server, connection, transcript } = await sessions.connect({ dsn: false });
    expect(connection.extensions.dsn).toBe(false);
    const result = await connection.send(dsnEnvelope, message, { tag: 'm1' });
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    const received = server.messages[0]!;
    expect(Object.keys(received.mailParams).sort()).toEqual(['SMTPUTF8']);
    expect(received.rcptParams).toEqual([{}, {}]);
    expect(transcript.entries).toContainEqual(
      expect.objectContaining({ kind: '*', text: DSN_NOT_OFFERED, tag: 'm1' }),
    );
  });
});

describe('REQUIRETLS', () => {
  it('goes on MAIL over verified STARTTLS to a server offering it', async () => {
    const { server, connection } = await tlsSession({ requireTls: true, dsn: true });
    expect(connection.secure).toBe(true);
    expect(connection.extensions.requireTls).toBe(true);
    const result = await connection.send({ ...dsnEnvelope, requireTls: true }, message);
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(server.messages[0]).toMatchObject({
      secure: true,
      mailParams: { REQUIRETLS: true, RET: 'HDRS' },
    });
  });

  it('sends nothing to a TLS server that does not offer it; the connection stays usable', async () => {
    const { server, connection, transcript } = await tlsSession({ requireTls: false });
    expect(connection.extensions.requireTls).toBe(false);
    await expect(
      connection.send({ from, to: ['b@server.test'], requireTls: true }, message),
    ).rejects.toMatchObject({
      code: 'SMTP_REQUIRETLS_UNSUPPORTED',
      stage: 'mail',
      transient: false,
      message: expect.stringContaining('the server does not offer REQUIRETLS'),
    });
    expect(commands(transcript).some((c) => c.startsWith('MAIL'))).toBe(false);
    expect(connection.usable).toBe(true);
    await connection.send({ from, to: ['b@server.test'] }, message);
    expect(server.messages).toHaveLength(1);
    expect(server.messages[0]?.mailParams.REQUIRETLS).toBeUndefined();
  });

  it('refuses over plain text even when the server advertises REQUIRETLS', async () => {
    // smtp-server advertises REQUIRETLS only over TLS; this peer claims it in plain text.
    const raw = await startRawSmtpServer({
      script: [...greetAndEhlo(['PIPELINING', 'REQUIRETLS']), ...reply('QUIT', '221 bye\r\n')],
    });
    try {
      const connection = await SmtpConnection.connect({ host: '127.0.0.1', port: raw.port, tls: 'none' });
      expect(connection.extensions.requireTls).toBe(true);
      await expect(
        connection.send({ from, to: ['b@server.test'], requireTls: true }, message),
      ).rejects.toMatchObject({
        code: 'SMTP_REQUIRETLS_UNSUPPORTED',
        message: expect.stringContaining('the connection is not TLS-secured'),
      });
      await connection.quit();
      const [seen] = await raw.settled(1);
      expect(seen?.error).toBeUndefined();
      expect(seen?.lines().some((l) => l.startsWith('MAIL'))).toBe(false);
    } finally {
      await raw.stop();
    }
  });
});
