// The connection asks maySendCredentials (credential-policy.ts) before any AUTH, with the real peer address
// of its socket. Tests send traffic to loopback only, so the "remote peer" refusal cannot be reached over the
// network: the policy's verdicts for every kind of address are unit-tested (smtp-credential-policy.test.ts);
// here a spy wraps the real policy to show what the connection asks it, and a "no" from it stops the session
// before a byte of AUTH is written.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { maySendCredentials } from '../../lib/smtp/credential-policy.ts';
import { createTranscript, SmtpConnection } from '../../lib/smtp/index.ts';
import type { SmtpClientOptions } from '../../lib/smtp/types.ts';
import {
  greetAndEhlo,
  type RawSmtpServer,
  reply,
  stall,
  startRawSmtpServer,
} from '../support/raw-smtp-server.ts';
import { startTestSmtpServer, TEST_USER, type TestSmtpServer } from '../support/smtp-server.ts';

vi.mock('../../lib/smtp/credential-policy.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../lib/smtp/credential-policy.ts')>();
  return { ...real, maySendCredentials: vi.fn(real.maySendCredentials) };
});
const policy = vi.mocked(maySendCredentials);

let raw: RawSmtpServer | undefined;
let smtp: TestSmtpServer | undefined;
afterEach(async () => {
  await raw?.stop();
  await smtp?.close();
  raw = undefined;
  smtp = undefined;
  policy.mockClear();
});

const PASS = 'plain-text-password';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

async function authServer(): Promise<RawSmtpServer> {
  raw = await startRawSmtpServer({
    script: [...greetAndEhlo(['AUTH PLAIN LOGIN']), ...reply(/^AUTH /, '235 2.7.0 ok\r\n'), stall()],
  });
  return raw;
}

const plain = (port: number, extra: Partial<SmtpClientOptions> = {}): SmtpClientOptions => ({
  host: '127.0.0.1',
  port,
  tls: 'none',
  name: 'client.test',
  auth: { user: 'u', pass: PASS },
  ...extra,
});

describe('the connection consults maySendCredentials before AUTH', () => {
  it('plain text to loopback: asked with the peer address, allowed, AUTH sent', async () => {
    const { port } = await authServer();
    const client = await SmtpConnection.connect(plain(port));
    client.close();

    expect(policy).toHaveBeenCalledTimes(1);
    expect(policy).toHaveBeenCalledWith({
      secure: false,
      allowInsecureAuth: false,
      peerAddress: '127.0.0.1',
    });
    expect(policy.mock.results[0]?.value).toBe(true);
    const auth = raw!.connections[0]!.lines().filter((line) => line.startsWith('AUTH '));
    expect(auth).toEqual([`AUTH PLAIN ${b64(`\0u\0${PASS}`)}`]);
  });

  it('allowInsecureAuth is passed on as given', async () => {
    const { port } = await authServer();
    const client = await SmtpConnection.connect(plain(port, { allowInsecureAuth: true }));
    client.close();

    expect(policy).toHaveBeenCalledWith({ secure: false, allowInsecureAuth: true, peerAddress: '127.0.0.1' });
  });

  it('after STARTTLS the link is reported secure', async () => {
    smtp = await startTestSmtpServer({ auth: true });
    const client = await SmtpConnection.connect({
      host: 'localhost',
      port: smtp.port,
      ca: smtp.caPem,
      auth: { user: TEST_USER.user, pass: TEST_USER.pass },
    });
    await client.quit();

    expect(policy).toHaveBeenCalledTimes(1);
    expect(policy.mock.calls[0]?.[0]).toMatchObject({ secure: true, allowInsecureAuth: false });
    expect(smtp.logins).toHaveLength(1);
  });

  it('a "no" (what it answers for a remote plain-text peer) stops before any AUTH byte', async () => {
    const { port } = await authServer();
    policy.mockReturnValueOnce(false);
    const transcript = createTranscript();

    await expect(SmtpConnection.connect(plain(port, { transcript }))).rejects.toMatchObject({
      code: 'SMTP_TLS_REQUIRED',
      stage: 'auth',
      transient: false,
    });

    expect(policy).toHaveBeenCalledWith({
      secure: false,
      allowInsecureAuth: false,
      peerAddress: '127.0.0.1',
    });
    const [connection] = await raw!.settled(1);
    const received = connection!.received().toString('latin1');
    expect(connection!.lines().filter((line) => line.toUpperCase().startsWith('AUTH'))).toEqual([]);
    expect(received).not.toContain(PASS);
    expect(received).not.toContain(b64(`\0u\0${PASS}`));
    expect(transcript.toString()).not.toContain('C: AUTH');
  });
});
