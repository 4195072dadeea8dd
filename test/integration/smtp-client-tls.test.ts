// TLS against a real smtp-server: STARTTLS with the local CA trusted by option, implicit TLS, plain, and the
// failures that must stop a session before MAIL FROM.
import { simpleParser } from 'mailparser';
import { afterEach, describe, expect, it } from 'vitest';
import { createTranscript, SmtpConnection } from '../../lib/smtp/index.ts';
import { createLocalCa } from '../../scripts/local/certs.ts';
import { greetAndEhlo, reply, startRawSmtpServer } from '../support/raw-smtp-server.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';

const servers: TestSmtpServer[] = [];
const connections: SmtpConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startTestSmtpServer>[0]) {
  const s = await startTestSmtpServer(options);
  servers.push(s);
  return s;
}

const MESSAGE = 'From: a@client.test\r\nTo: b@server.test\r\nSubject: tls\r\n\r\nover TLS\r\n';

describe('TLS', () => {
  it('upgrades with STARTTLS, verifies the certificate for the host name, forgets EHLO and asks again', async () => {
    const s = await server({ tls: 'starttls' });
    const transcript = createTranscript();
    const c = await SmtpConnection.connect({ host: 'localhost', port: s.port, ca: s.caPem, transcript });
    connections.push(c);
    expect(c.secure).toBe(true);
    expect(c.extensions.starttls).toBe(false); // the EHLO over TLS no longer offers it
    const result = await c.send({ from: 'a@client.test', to: ['b@server.test'] }, MESSAGE);
    expect(result.recipients[0]?.status).toBe('accepted');
    await c.quit();
    expect(s.messages).toHaveLength(1);
    expect(s.messages[0]?.secure).toBe(true);
    expect((await simpleParser(s.messages[0]!.raw)).subject).toBe('tls');
    const text = transcript.toString();
    expect(text).toMatch(/\* {2}TLS 1\.[23] \S+, certificate verified for localhost\n/);
    expect(text.match(/C: EHLO /g)).toHaveLength(2);
    expect(text.indexOf('C: STARTTLS')).toBeLessThan(text.lastIndexOf('C: EHLO'));
  });

  it('checks an IP address against the certificate (no SNI)', async () => {
    const s = await server({ tls: 'starttls' });
    const c = await SmtpConnection.connect({ host: '127.0.0.1', port: s.port, ca: s.caPem });
    connections.push(c);
    expect(c.secure).toBe(true);
    await c.quit();
  });

  it('fails with SMTP_TLS when the certificate is signed by a CA it does not trust', async () => {
    const s = await server({ tls: 'starttls' });
    const other = await createLocalCa();
    const transcript = createTranscript();
    const error = await SmtpConnection.connect({
      host: 'localhost',
      port: s.port,
      ca: other.caPem,
      transcript,
    }).catch((e) => e);
    expect(error).toMatchObject({ name: 'SmtpError', code: 'SMTP_TLS', stage: 'starttls' });
    expect(transcript.toString()).not.toMatch(/C: (MAIL|AUTH)/);
  });

  it('fails with SMTP_TLS without any CA option (self-signed chain not in the default store)', async () => {
    const s = await server({ tls: 'implicit' });
    await expect(
      SmtpConnection.connect({ host: 'localhost', port: s.port, tls: 'implicit' }),
    ).rejects.toMatchObject({
      code: 'SMTP_TLS',
      stage: 'connect',
    });
  });

  it('fails with SMTP_TLS when the certificate does not name the host', async () => {
    const s = await server({ tls: 'starttls' });
    await expect(
      SmtpConnection.connect({ host: '127.0.0.1', servername: 'mail.other.test', port: s.port, ca: s.caPem }),
    ).rejects.toMatchObject({ code: 'SMTP_TLS' });
  });

  it('aborts when even part of a reply follows the STARTTLS 220 in plain text (RFC 3207 §6)', async () => {
    const raw = await startRawSmtpServer({
      script: [
        ...greetAndEhlo(['STARTTLS']),
        ...reply('STARTTLS', '220 go ahead\r\n250-injected but unfinished'),
      ],
    });
    try {
      const transcript = createTranscript();
      await expect(
        SmtpConnection.connect({
          host: '127.0.0.1',
          port: raw.port,
          transcript,
          timeouts: { command: 2000 },
        }),
      ).rejects.toMatchObject({ code: 'SMTP_PROTOCOL', stage: 'starttls' });
      expect(transcript.toString()).not.toContain('injected');
    } finally {
      await raw.stop();
    }
  });

  it('speaks implicit TLS from the first byte', async () => {
    const s = await server({ tls: 'implicit' });
    const transcript = createTranscript();
    const c = await SmtpConnection.connect({
      host: 'localhost',
      port: s.port,
      tls: 'implicit',
      ca: s.caPem,
      transcript,
    });
    connections.push(c);
    expect(c.secure).toBe(true);
    await c.send({ from: 'a@client.test', to: ['b@server.test'] }, MESSAGE);
    await c.quit();
    expect(s.messages[0]?.secure).toBe(true);
    expect(transcript.toString()).not.toContain('STARTTLS');
    expect(transcript.toString()).toMatch(/certificate verified for localhost/);
  });

  it('stops with SMTP_TLS_REQUIRED before MAIL FROM when STARTTLS is not offered', async () => {
    const s = await server({ tls: 'none' });
    const transcript = createTranscript();
    await expect(
      SmtpConnection.connect({ host: 'localhost', port: s.port, transcript }),
    ).rejects.toMatchObject({
      code: 'SMTP_TLS_REQUIRED',
      stage: 'starttls',
      transient: false,
    });
    expect(transcript.toString()).not.toContain('MAIL FROM');
    expect(s.messages).toHaveLength(0);
  });

  it('goes on in plain text when TLS is not required, or with tls none', async () => {
    const s = await server({ tls: 'none' });
    const c1 = await SmtpConnection.connect({ host: 'localhost', port: s.port, requireTLS: false });
    const c2 = await SmtpConnection.connect({ host: 'localhost', port: s.port, tls: 'none' });
    connections.push(c1, c2);
    expect(c1.secure).toBe(false);
    await c1.send({ from: 'a@client.test', to: ['b@server.test'] }, MESSAGE);
    await c2.send({ from: 'a@client.test', to: ['c@server.test'] }, MESSAGE);
    expect(s.messages.map((m) => m.rcptTo)).toEqual([['b@server.test'], ['c@server.test']]);
  });
});
