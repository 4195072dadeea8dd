// Transactions against smtp-server: pipelining on and off, many messages on one connection (also concurrent,
// pipelined across messages), per-recipient outcomes for 4xx/5xx at every stage smtp-server can fake, SIZE,
// MAIL parameters, and a streamed body checked byte for byte with mailparser.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { type SmtpClientOptions, SmtpConnection, type Transcript } from '../../lib/smtp/index.ts';
import type { TestSmtpServer, TestSmtpServerOptions } from '../support/smtp-server.ts';
import { smtpSessionsPerTest } from '../support/smtp-sessions.ts';

const sessions = smtpSessionsPerTest();

async function setup(
  serverOptions: TestSmtpServerOptions = {},
  clientOptions: Partial<SmtpClientOptions> = {},
): Promise<{ s: TestSmtpServer; c: SmtpConnection; transcript: Transcript }> {
  const { server: s, connection: c, transcript } = await sessions.connect(serverOptions, clientOptions);
  return { s, c, transcript };
}

const message = (n: number | string) => `From: a@client.test\r\nSubject: message ${n}\r\n\r\nbody ${n}\r\n`;
const lines = (t: Transcript) => t.entries.filter((e) => e.kind !== '*').map((e) => `${e.kind}: ${e.text}`);
const from = 'a@client.test';

describe('transactions', () => {
  it('with PIPELINING sends MAIL, every RCPT and DATA in one go, before any reply', async () => {
    const { s, c, transcript } = await setup();
    expect(c.extensions.pipelining).toBe(true);
    const result = await c.send({ from, to: ['b@server.test', 'c@server.test'] }, message(1));
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    const l = lines(transcript);
    const mail = l.findIndex((x) => x.startsWith('C: MAIL FROM:<a@client.test>'));
    expect(l.slice(mail, mail + 4)).toEqual([
      expect.stringMatching(/^C: MAIL FROM:<a@client.test>( SIZE=\d+)?$/),
      'C: RCPT TO:<b@server.test>',
      'C: RCPT TO:<c@server.test>',
      'C: DATA',
    ]);
    expect(s.messages[0]?.rcptTo).toEqual(['b@server.test', 'c@server.test']);
  });

  it('without PIPELINING waits for each reply', async () => {
    const { s, c, transcript } = await setup({ hidePipelining: true });
    expect(c.extensions.pipelining).toBe(false);
    await c.send({ from, to: ['b@server.test', 'c@server.test'] }, message(1));
    const l = lines(transcript);
    const mail = l.findIndex((x) => x.startsWith('C: MAIL'));
    expect(l.slice(mail, mail + 8).map((x) => x.slice(0, 2))).toEqual([
      'C:',
      'S:',
      'C:',
      'S:',
      'C:',
      'S:',
      'C:',
      'S:',
    ]);
    expect(s.messages).toHaveLength(1);
  });

  it('the pipelining option turns it off even when offered', async () => {
    const { c, transcript } = await setup({}, { pipelining: false });
    await c.send({ from, to: ['b@server.test', 'c@server.test'] }, message(1));
    const l = lines(transcript);
    const mail = l.findIndex((x) => x.startsWith('C: MAIL'));
    expect(l[mail + 1]).toMatch(/^S: 250/);
  });

  it('sends several messages one after another on one connection', async () => {
    const { s, c } = await setup();
    for (let i = 0; i < 5; i++) await c.send({ from, to: [`r${i}@server.test`] }, message(i));
    expect(s.connections()).toBe(1);
    expect(s.messages.map((m) => m.rcptTo[0])).toEqual([0, 1, 2, 3, 4].map((i) => `r${i}@server.test`));
  });

  it.each([true, false])(
    'queues concurrent sends (pipelining %s); with PIPELINING the next MAIL goes before the last reply',
    async (pipelining) => {
      const { s, c, transcript } = await setup({ hidePipelining: !pipelining });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => c.send({ from, to: [`r${i}@server.test`] }, message(i))),
      );
      expect(results.every((r) => r.recipients[0]?.status === 'accepted')).toBe(true);
      expect(s.messages.map((m) => m.raw.toString())).toEqual(
        Array.from({ length: 10 }, (_, i) => message(i)),
      );
      // RFC 2920 §3.1: the end of message N and the commands of message N+1 leave together, before N's reply.
      const l = lines(transcript);
      const firstEnd = l.findIndex((x) => x.startsWith('C: <message:'));
      const next = l[firstEnd + 1]!;
      if (pipelining) expect(next).toMatch(/^C: MAIL FROM/);
      else expect(next).toMatch(/^S: 250/);
    },
  );

  it.each([
    [550, 'failed'],
    [451, 'deferred'],
  ] as const)(
    'MAIL answered %i: every recipient takes that reply; the connection goes on',
    async (code, status) => {
      const { s, c } = await setup({
        hooks: { mail: ({ count }) => (count === 1 ? { code, message: 'sender refused' } : undefined) },
      });
      const result = await c.send({ from, to: ['b@server.test', 'c@server.test'] }, message(1));
      expect(result.mail.code).toBe(code);
      expect(result.recipients).toEqual([
        { address: 'b@server.test', status, reply: expect.objectContaining({ code }) },
        { address: 'c@server.test', status, reply: expect.objectContaining({ code }) },
      ]);
      expect(result.data).toBeUndefined();
      expect(c.usable).toBe(true);
      await c.send({ from, to: ['d@server.test'] }, message(2));
      expect(s.messages.map((m) => m.rcptTo)).toEqual([['d@server.test']]);
    },
  );

  it.each([true, false])(
    'RCPT refused for some recipients (pipelining %s): the others get it',
    async (pipelining) => {
      const { s, c } = await setup({
        hidePipelining: !pipelining,
        hooks: {
          rcpt: ({ address }) => {
            if (address === 'gone@server.test') return { code: 550, message: '5.1.1 no such user' };
            if (address === 'full@server.test') return { code: 452, message: '4.5.3 too many recipients' };
            return undefined;
          },
        },
      });
      const result = await c.send(
        { from, to: ['ok@server.test', 'gone@server.test', 'full@server.test', 'ok2@server.test'] },
        message(1),
      );
      expect(result.recipients.map((r) => [r.address, r.status, r.reply.code])).toEqual([
        ['ok@server.test', 'accepted', 250],
        ['gone@server.test', 'failed', 550],
        ['full@server.test', 'deferred', 452],
        ['ok2@server.test', 'accepted', 250],
      ]);
      expect(result.recipients[1]?.reply.enhanced).toBe('5.1.1');
      expect(s.messages[0]?.rcptTo).toEqual(['ok@server.test', 'ok2@server.test']);
    },
  );

  it.each([true, false])(
    'every RCPT refused (pipelining %s): no message, RSET, and the next transaction works',
    async (pipelining) => {
      const { s, c, transcript } = await setup({
        hidePipelining: !pipelining,
        hooks: {
          rcpt: ({ address }) => (address?.startsWith('bad') ? { code: 550, message: 'no' } : undefined),
        },
      });
      const result = await c.send({ from, to: ['bad1@server.test', 'bad2@server.test'] }, message(1));
      expect(result.recipients.map((r) => r.status)).toEqual(['failed', 'failed']);
      expect(c.usable).toBe(true);
      const next = await c.send({ from, to: ['good@server.test'] }, message(2));
      expect(next.recipients[0]?.status).toBe('accepted');
      expect(s.messages.map((m) => m.rcptTo)).toEqual([['good@server.test']]);
      expect(lines(transcript)).toContain('C: RSET');
    },
  );

  it.each([
    [554, 'failed'],
    [451, 'deferred'],
  ] as const)('end of data answered %i: the accepted recipients take it', async (code, status) => {
    const { c } = await setup({
      hooks: {
        rcpt: ({ address }) => (address === 'gone@server.test' ? { code: 550, message: 'no' } : undefined),
        data: ({ count }) => (count === 1 ? { code, message: 'content refused' } : undefined),
      },
    });
    const result = await c.send({ from, to: ['ok@server.test', 'gone@server.test'] }, message(1));
    expect(result.data?.code).toBe(code);
    expect(result.recipients.map((r) => [r.status, r.reply.code])).toEqual([
      [status, code],
      ['failed', 550],
    ]);
    expect(c.usable).toBe(true);
    expect((await c.send({ from, to: ['ok@server.test'] }, message(2))).recipients[0]?.status).toBe(
      'accepted',
    );
  });

  it('refuses a message over the advertised SIZE before sending it (SMTP_SIZE), then goes on', async () => {
    const { s, c, transcript } = await setup({ size: 1000 });
    expect(c.extensions.size).toBe(1000);
    await expect(c.send({ from, to: ['b@server.test'] }, 'x'.repeat(2000))).rejects.toMatchObject({
      code: 'SMTP_SIZE',
      transient: false,
    });
    expect(lines(transcript).some((l) => l.startsWith('C: MAIL'))).toBe(false);
    expect(c.usable).toBe(true);
    await c.send({ from, to: ['b@server.test'] }, message(1));
    expect(s.messages).toHaveLength(1);
    expect(s.messages[0]?.mailParams.SIZE).toBe(String(Buffer.byteLength(message(1))));
  });

  it('a streamed message over the limit gets the server’s 552 as a permanent failure', async () => {
    const { s, c } = await setup({ size: 1000 });
    const result = await c.send({ from, to: ['b@server.test'] }, Readable.from([Buffer.alloc(3000, 'x')]));
    expect(result.recipients[0]).toMatchObject({ status: 'failed', reply: { code: 552 } });
    expect(s.messages).toHaveLength(0);
    expect(c.usable).toBe(true);
  });

  it('destroys a stream body it does not need (MAIL refused), releasing what is behind it', async () => {
    const { c } = await setup({ hooks: { mail: () => ({ code: 550, message: 'no' }) } });
    const body = new Readable({ read() {} });
    const result = await c.send({ from, to: ['b@server.test'] }, body);
    expect(result.recipients[0]?.status).toBe('failed');
    expect(body.destroyed).toBe(true);
  });

  it('declares BODY=8BITMIME for 8-bit content and SMTPUTF8 for an international address', async () => {
    const { s, c } = await setup();
    await c.send({ from: 'jörg@client.test', to: ['b@server.test'] }, 'Subject: grüße\r\n\r\nä\r\n');
    expect(s.messages[0]?.mailParams).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true });
    expect(s.messages[0]?.mailFrom).toBe('jörg@client.test');
  });

  it('fails an international address without SMTPUTF8, before MAIL', async () => {
    const { c } = await setup({ hideSmtpUtf8: true });
    await expect(c.send({ from, to: ['jörg@server.test'] }, message(1))).rejects.toMatchObject({
      code: 'SMTP_SMTPUTF8_UNSUPPORTED',
    });
    expect(c.usable).toBe(true);
  });

  it('rejects a recipient with CR/LF before anything is written', async () => {
    const { s, c, transcript } = await setup();
    await expect(
      c.send({ from, to: ['b@server.test>\r\nRCPT TO:<evil@server.test'] }, message(1)),
    ).rejects.toMatchObject({ code: 'SMTP_INVALID_ARGUMENT', stage: 'rcpt' });
    expect(lines(transcript).some((l) => l.startsWith('C: MAIL'))).toBe(false);
    await c.quit();
    expect(s.messages).toHaveLength(0);
  });

  it('streams a large MIME message; the server gets it byte for byte (attachment equal after parsing)', async () => {
    const { s, c, transcript } = await setup();
    const attachment = randomBytes(600 * 1024);
    const base64 = attachment.toString('base64').replace(/.{76}/g, '$&\n'); // bare LFs on purpose
    const mime = [
      'From: a@client.test\nTo: b@server.test\nSubject: streamed\nMIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"\n',
      '--b1\nContent-Type: text/plain\n\n.leading dot line\n..two dots\n',
      '--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="blob.bin"\n',
      base64,
      '--b1--\n',
    ].join('\n');
    const bytes = Buffer.from(mime);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 1000) yield bytes.subarray(i, i + 1000);
    }
    const result = await c.send({ from, to: ['b@server.test'] }, Readable.from(chunks()));
    expect(result.recipients[0]?.status).toBe('accepted');
    const raw = s.messages[0]!.raw;
    expect(raw.toString('latin1')).toBe(mime.replace(/\n/g, '\r\n'));
    const parsed = await simpleParser(raw);
    expect(parsed.text).toContain('.leading dot line\n..two dots');
    expect(parsed.attachments[0]?.content.equals(attachment)).toBe(true);
    expect(lines(transcript)).toContain(
      `C: <message: ${raw.length} octets, ${raw.toString('latin1').split('\r\n').length - 1} lines>`,
    );
  });

  it('records the payload itself with transcriptData', async () => {
    const { c, transcript } = await setup({}, { transcriptData: true });
    await c.send({ from, to: ['b@server.test'] }, 'Subject: t\r\n\r\n.dot\r\n');
    expect(lines(transcript)).toEqual(expect.arrayContaining(['C: Subject: t', 'C: ', 'C: ..dot', 'C: .']));
  });

  it('RSET and NOOP answer 250; after QUIT the connection is not usable', async () => {
    const { c, transcript } = await setup();
    expect((await c.rset()).code).toBe(250);
    expect((await c.noop()).code).toBe(250);
    await c.quit();
    expect(c.usable).toBe(false);
    await expect(c.send({ from, to: ['b@server.test'] }, message(1))).rejects.toMatchObject({
      name: 'SmtpError',
    });
    expect(lines(transcript).slice(-2)).toEqual(['C: QUIT', expect.stringMatching(/^S: 221/)]);
  });

  it('QUIT waits for the queued sends; a second quit() waits for the same QUIT', async () => {
    const { s, c, transcript } = await setup();
    const sends = [1, 2, 3].map((i) => c.send({ from, to: [`r${i}@server.test`] }, message(i)));
    await Promise.all([c.quit(), c.quit()]);
    expect((await Promise.all(sends)).map((r) => r.recipients[0]?.status)).toEqual([
      'accepted',
      'accepted',
      'accepted',
    ]);
    expect(s.messages).toHaveLength(3);
    expect(lines(transcript).filter((l) => l === 'C: QUIT')).toHaveLength(1);
  });

  it('a 421 greeting fails the connect as a transient SMTP_REPLY', async () => {
    const s = await sessions.startServer({ hooks: { connect: () => ({ code: 421, message: 'busy' }) } });
    await expect(
      SmtpConnection.connect({ host: '127.0.0.1', port: s.port, tls: 'none' }),
    ).rejects.toMatchObject({
      code: 'SMTP_REPLY',
      stage: 'greeting',
      transient: true,
      reply: { code: 421 },
    });
  });
});
