// A composed message sent by lib/smtp to a real smtp-server: what the server receives is the composed bytes,
// every envelope recipient (Bcc included) is addressed, and an internationalised address needs SMTPUTF8.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { composeMessage, fromSendRequest } from '../../lib/message/index.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import { smtpSessionsPerTest } from '../support/smtp-sessions.ts';

const { connect } = smtpSessionsPerTest();

describe('composed messages over SMTP', () => {
  it('delivers the composed bytes with attachments to every recipient, Bcc only in the envelope', async () => {
    const { server, connection } = await connect();
    const binary = randomBytes(200_000);
    const validated = validateSendRequest({
      from: 'Sender <sender@example.com>',
      to: ['Ann <ann@example.org>'],
      cc: 'carl@example.org',
      bcc: 'hidden@example.net',
      subject: 'Quarterly report — Q4 ✓',
      text: 'Hello\n.\n..leading dots survive dot-stuffing\n',
      html: '<p>Hello <img src="cid:logo@example"></p>',
      attachments: [
        { filename: 'report.bin', content: binary.toString('base64') },
        { filename: 'logo.png', contentType: 'image/png', content: 'iVBORw0KGgo=', cid: 'logo@example' },
      ],
      headers: { 'X-Campaign': 'q4' },
    });
    if (!validated.ok) throw new Error(JSON.stringify(validated.issues));
    const composed = composeMessage(fromSendRequest(validated.value, { messageIdDomain: 'smtpq.test' }));

    const result = await connection.send(composed.envelope, composed.createStream());

    expect(result.recipients.map((r) => [r.address, r.status])).toEqual([
      ['ann@example.org', 'accepted'],
      ['carl@example.org', 'accepted'],
      ['hidden@example.net', 'accepted'],
    ]);
    const received = server.messages[0]!;
    expect(received.mailFrom).toBe('sender@example.com');
    expect(received.rcptTo).toEqual(['ann@example.org', 'carl@example.org', 'hidden@example.net']);
    expect(received.raw.equals(await buffer(composed.createStream()))).toBe(true);
    const mail = await simpleParser(received.raw);
    expect(mail.subject).toBe('Quarterly report — Q4 ✓');
    expect(mail.messageId).toBe(composed.messageId);
    expect(mail.text).toBe('Hello\n.\n..leading dots survive dot-stuffing\n');
    expect(mail.messageId).toBe(composed.messageId);
    expect(composed.messageId).toMatch(/@smtpq\.test>$/);
    expect(mail.attachments.find((a) => a.cid === 'logo@example')?.related).toBe(true);
    expect(received.raw.toString('latin1')).not.toMatch(/hidden@example\.net/);
  });

  it('sends the same bytes again on the same connection (a retry recomposes nothing)', async () => {
    const { server, connection } = await connect();
    const fixed = randomBytes(5000);
    const stable = composeMessage({
      from: 'a@example.com',
      to: 'b@example.org',
      text: 'retry me',
      attachments: [{ filename: 'x.bin', content: () => Readable.from([fixed]) }],
    });
    await connection.send(stable.envelope, stable.createStream());
    await connection.send(stable.envelope, stable.createStream());
    expect(server.messages).toHaveLength(2);
    expect(server.messages[1]!.raw.equals(server.messages[0]!.raw)).toBe(true);
    expect((await simpleParser(server.messages[1]!.raw)).attachments[0]?.content.equals(fixed)).toBe(true);
  });

  it('asks for SMTPUTF8 for a UTF-8 local part, and the server receives it as UTF-8', async () => {
    const { server, connection } = await connect();
    const composed = composeMessage({ from: 'José <josé@example.com>', to: '用户@例子.广告', text: 'hola' });
    expect(composed.envelope).toMatchObject({ smtpUtf8: true, to: ['用户@xn--fsqu00a.xn--4rr70v'] });
    await connection.send(composed.envelope, composed.createStream());
    const received = server.messages[0]!;
    expect(received.mailParams).toMatchObject({ SMTPUTF8: true });
    expect(received.mailFrom).toBe('josé@example.com');
    const mail = await simpleParser(received.raw);
    expect(mail.from?.value[0]).toEqual({ name: 'José', address: 'josé@example.com' });
  });

  it('fails with a clear typed error before MAIL FROM when the server lacks SMTPUTF8', async () => {
    const { server, connection } = await connect({ hideSmtpUtf8: true });
    const composed = composeMessage({ from: 'josé@example.com', to: 'b@example.org', text: 'hola' });
    const error = await connection.send(composed.envelope, composed.createStream()).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SmtpError', code: 'SMTP_SMTPUTF8_UNSUPPORTED' });
    expect(server.messages).toHaveLength(0);
  });

  it('needs no SMTPUTF8 for an IDN domain (punycode in the envelope)', async () => {
    const { server, connection, transcript } = await connect({ hideSmtpUtf8: true });
    const composed = composeMessage({ from: 'a@example.com', to: 'Jüri <juri@jõgeva.ee>', text: 'tere' });
    const result = await connection.send(composed.envelope, composed.createStream());
    expect(result.recipients[0]?.status).toBe('accepted');
    // smtp-server shows the address decoded to Unicode; the transcript shows what went on the wire.
    expect(transcript.toString()).toMatch(/C: RCPT TO:<juri@xn--jgeva-dua\.ee>\n/);
    expect(transcript.toString()).not.toMatch(/SMTPUTF8\n/);
    expect(server.messages[0]!.mailParams).not.toHaveProperty('SMTPUTF8');
  });
});
