// AUTH PLAIN, LOGIN and XOAUTH2 against smtp-server, failures typed as SMTP_AUTH, and no secret in transcripts.
import { afterEach, describe, expect, it } from 'vitest';
import { createTranscript, type SmtpClientOptions, SmtpConnection } from '../../lib/smtp/index.ts';
import { startTestSmtpServer, TEST_USER, type TestSmtpServer } from '../support/smtp-server.ts';

const servers: TestSmtpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startTestSmtpServer>[0]) {
  const s = await startTestSmtpServer(options);
  servers.push(s);
  return s;
}

/** A client of `s` over STARTTLS, trusting the test CA; `extra` adds the rest. */
const clientOf = (s: TestSmtpServer, extra: Partial<SmtpClientOptions>): SmtpClientOptions => ({
  host: 'localhost',
  port: s.port,
  ca: s.caPem,
  ...extra,
});

/** Every form a secret could take in a transcript: plain and base64 of each part. */
function secretsIn(text: string): string[] {
  const secrets = [TEST_USER.pass, TEST_USER.accessToken];
  const forms = secrets.flatMap((s) => [s, Buffer.from(s).toString('base64')]);
  forms.push(Buffer.from(`\0${TEST_USER.user}\0${TEST_USER.pass}`).toString('base64'));
  forms.push(Buffer.from(TEST_USER.user).toString('base64'));
  return forms.filter((f) => text.includes(f));
}

describe('AUTH', () => {
  it.each([
    ['PLAIN', { user: TEST_USER.user, pass: TEST_USER.pass }],
    ['LOGIN', { user: TEST_USER.user, pass: TEST_USER.pass }],
    ['XOAUTH2', { user: TEST_USER.user, accessToken: TEST_USER.accessToken }],
  ] as const)('logs in with %s and records no secret', async (method, auth) => {
    const s = await server({ auth: true });
    const transcript = createTranscript();
    const c = await SmtpConnection.connect(clientOf(s, { auth, authMethod: method, transcript }));
    const result = await c.send(
      { from: TEST_USER.user, to: ['b@server.test'] },
      'Subject: auth\r\n\r\nx\r\n',
    );
    await c.quit();
    expect(result.recipients[0]?.status).toBe('accepted');
    expect(s.logins).toEqual([{ method, user: TEST_USER.user }]);
    expect(s.messages[0]?.user).toBe(TEST_USER.user);
    const text = transcript.toString();
    expect(text).toContain(`C: AUTH ${method}`);
    expect(text).toContain('S: 235');
    expect(secretsIn(text)).toEqual([]);
    if (method === 'LOGIN') expect(text).toMatch(/S: 334 <redacted>\n.*C: <redacted>\n/);
  });

  it('picks PLAIN for a password and XOAUTH2 for a token when not told', async () => {
    const s = await server({ auth: true });
    const password = { user: TEST_USER.user, pass: TEST_USER.pass };
    const a = await SmtpConnection.connect(clientOf(s, { auth: password }));
    const b = await SmtpConnection.connect(
      clientOf(s, { auth: { user: TEST_USER.user, accessToken: TEST_USER.accessToken } }),
    );
    await Promise.all([a.quit(), b.quit()]);
    expect(s.logins.map((l) => l.method).sort()).toEqual(['PLAIN', 'XOAUTH2']);
  });

  it.each([
    ['PLAIN', { user: TEST_USER.user, pass: 'wrong' }],
    ['LOGIN', { user: TEST_USER.user, pass: 'wrong' }],
    ['XOAUTH2', { user: TEST_USER.user, accessToken: 'expired' }],
  ] as const)(
    'fails %s with a wrong secret as SMTP_AUTH, permanent, with the 535 reply',
    async (method, auth) => {
      const s = await server({ auth: true });
      const transcript = createTranscript();
      const options = clientOf(s, { auth, authMethod: method, transcript });
      const error = await SmtpConnection.connect(options).catch((e) => e);
      expect(error).toMatchObject({
        code: 'SMTP_AUTH',
        stage: 'auth',
        transient: false,
        reply: { code: 535 },
      });
      expect(transcript.toString()).not.toContain(Buffer.from('expired').toString('base64'));
      expect(transcript.toString()).not.toContain('MAIL FROM');
    },
  );

  it('fails with SMTP_AUTH when no offered mechanism fits', async () => {
    const s = await server({ auth: ['LOGIN'] });
    await expect(
      SmtpConnection.connect(
        clientOf(s, { auth: { user: TEST_USER.user, accessToken: TEST_USER.accessToken } }),
      ),
    ).rejects.toMatchObject({ code: 'SMTP_AUTH', stage: 'auth' });
  });

  // The refusal to a non-loopback peer is decided by maySendCredentials (unit-tested in
  // smtp-credential-policy.test.ts; the connection's use of it in smtp-client-auth-policy.test.ts): tests
  // send traffic to loopback only.
  it('sends credentials in plain text to loopback (smtp-server allowing it)', async () => {
    const s = await server({ auth: true, tls: 'none', allowInsecureAuth: true });
    const auth = { user: TEST_USER.user, pass: TEST_USER.pass };
    const c = await SmtpConnection.connect({ host: '127.0.0.1', port: s.port, tls: 'none', auth });
    await c.quit();
    expect(s.logins).toHaveLength(1);
  });
});
