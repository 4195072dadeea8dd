// sendWithRetry against smtp-server: transient outcomes retried (only the recipients still undelivered),
// permanent ones never, 452 splits sent at once, back-off bounded by the policy and the deadline.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTranscript, type RetryPolicy, SmtpConnection, sendWithRetry } from '../../lib/smtp/index.ts';
import {
  startTestSmtpServer,
  type TestSmtpServer,
  type TestSmtpServerOptions,
} from '../support/smtp-server.ts';

const servers: TestSmtpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: TestSmtpServerOptions) {
  const s = await startTestSmtpServer({ tls: 'none', ...options });
  servers.push(s);
  return s;
}

const policy: RetryPolicy = { attempts: 3, baseDelayMs: 100, maxDelayMs: 1000 };
const body = () => 'Subject: retry\r\n\r\nhello\r\n';

function run(s: TestSmtpServer, to: string[], overrides: Partial<Parameters<typeof sendWithRetry>[0]> = {}) {
  const sleeps: number[] = [];
  const transcript = createTranscript();
  const result = sendWithRetry({
    options: { host: '127.0.0.1', port: s.port, tls: 'none' },
    envelope: { from: 'a@client.test', to },
    body,
    policy,
    transcript,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
  return { result, sleeps, transcript };
}

describe('sendWithRetry', () => {
  it('retries a 451 recipient once and never sends to the accepted one again', async () => {
    const s = await server({
      hooks: {
        rcpt: ({ address, countForAddress }) =>
          address === 'slow@server.test' && countForAddress === 1
            ? { code: 451, message: '4.7.1 greylisted' }
            : undefined,
      },
    });
    const { result, sleeps, transcript } = run(s, ['ok@server.test', 'slow@server.test']);
    const r = await result;
    expect(r.recipients.map((x) => [x.address, x.status])).toEqual([
      ['ok@server.test', 'accepted'],
      ['slow@server.test', 'accepted'],
    ]);
    expect(r.attempts).toBe(2);
    expect(r.error).toBeUndefined();
    expect(s.messages.map((m) => m.rcptTo)).toEqual([['ok@server.test'], ['slow@server.test']]);
    expect(sleeps).toEqual([50]); // full jitter: random 0.5 × base 100
    const text = transcript.toString();
    expect(text).toContain('*  attempt 1 of 3: 2 recipient(s)');
    expect(text).toContain('*  retrying 1 recipient(s) in 50 ms');
    expect(text).toContain('*  attempt 2 of 3: 1 recipient(s)');
    await r.connection?.quit();
  });

  it('never retries a 5xx', async () => {
    const s = await server({
      hooks: {
        rcpt: ({ address }) => (address === 'bad@server.test' ? { code: 550, message: 'no' } : undefined),
      },
    });
    const { result, sleeps } = run(s, ['bad@server.test', 'ok@server.test']);
    const r = await result;
    expect(r.recipients.map((x) => x.status)).toEqual(['failed', 'accepted']);
    expect(r.attempts).toBe(1);
    expect(sleeps).toEqual([]);
    await r.connection?.quit();
  });

  it('reconnects after a 421 and delivers', async () => {
    const s = await server({
      hooks: {
        mail: ({ count }) => (count === 1 ? { code: 421, message: '4.3.2 shutting down' } : undefined),
      },
    });
    const { result } = run(s, ['b@server.test']);
    const r = await result;
    expect(r.recipients[0]?.status).toBe('accepted');
    expect(r.attempts).toBe(2);
    expect(s.connections()).toBe(2);
    await r.connection?.quit();
  });

  it('gives up after the last attempt with the last 4xx reply, backing off exponentially', async () => {
    const s = await server({ hooks: { rcpt: () => ({ code: 450, message: '4.2.0 mailbox busy' }) } });
    const { result, sleeps } = run(s, ['b@server.test']);
    const r = await result;
    expect(r.attempts).toBe(3);
    expect(r.recipients[0]).toMatchObject({ status: 'deferred', reply: { code: 450, enhanced: '4.2.0' } });
    expect(sleeps).toEqual([50, 100]);
    await r.connection?.quit();
  });

  it('does not start a back-off that would end past the deadline', async () => {
    const s = await server({ hooks: { rcpt: () => ({ code: 451, message: 'later' }) } });
    const { result, sleeps, transcript } = run(s, ['b@server.test'], {
      policy: { ...policy, baseDelayMs: 60_000, maxDelayMs: 60_000, deadline: Date.now() + 5_000 },
    });
    const r = await result;
    expect(r.attempts).toBe(1);
    expect(sleeps).toEqual([]);
    expect(r.recipients[0]?.status).toBe('deferred');
    expect(transcript.toString()).toContain('no further attempt');
    await r.connection?.quit();
  });

  it('sends recipients refused with 452 in a further transaction at once, without using an attempt', async () => {
    const s = await server({
      hooks: {
        rcpt: ({ address, countForAddress }) =>
          address === 'c@server.test' && countForAddress === 1
            ? { code: 452, message: '4.5.3 too many recipients' }
            : undefined,
      },
    });
    const { result, sleeps } = run(s, ['a@server.test', 'b@server.test', 'c@server.test']);
    const r = await result;
    expect(r.recipients.map((x) => x.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(r.attempts).toBe(1);
    expect(sleeps).toEqual([]);
    expect(s.messages.map((m) => m.rcptTo)).toEqual([['a@server.test', 'b@server.test'], ['c@server.test']]);
    await r.connection?.quit();
  });

  it('uses the connection it is given and hands it back', async () => {
    const s = await server({});
    const connection = await SmtpConnection.connect({ host: '127.0.0.1', port: s.port, tls: 'none' });
    const { result } = run(s, ['b@server.test'], { connection });
    const r = await result;
    expect(r.connection).toBe(connection);
    expect(s.connections()).toBe(1);
    await connection.quit();
  });

  it('defers on a TLS failure without trying again now (nothing would change within seconds)', async () => {
    const s = await server({ tls: 'starttls' });
    const { result, sleeps } = run(s, ['b@server.test'], {
      options: { host: 'localhost', port: s.port, tls: 'starttls' }, // the test CA is not trusted
    });
    const r = await result;
    expect(r.attempts).toBe(1);
    expect(sleeps).toEqual([]);
    expect(r.error).toMatchObject({ code: 'SMTP_TLS', transient: true });
    expect(r.recipients[0]).toMatchObject({ status: 'deferred', reply: { code: 451 } });
    expect(s.messages).toHaveLength(0);
  });

  it('rejects a policy that makes no sense', async () => {
    const s = await server({});
    const { result } = run(s, ['b@server.test'], { policy: { attempts: 0, baseDelayMs: 1, maxDelayMs: 1 } });
    await expect(result).rejects.toMatchObject({ code: 'SMTP_INVALID_ARGUMENT' });
  });

  it('ends an attempt at the deadline even when the server stalls longer than the command timeout', async () => {
    // Greets and answers EHLO, then never answers MAIL: only the deadline can end the wait (the command
    // timeout is 30 s, longer than this test may run).
    const stalling = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.write('220 stall.test ESMTP\r\n');
      socket.once('data', () => socket.write('250 stall.test\r\n'));
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    try {
      const port = (stalling.address() as net.AddressInfo).port;
      const r = await sendWithRetry({
        options: { host: '127.0.0.1', port, tls: 'none', timeouts: { command: 30_000 } },
        envelope: { from: 'a@client.test', to: ['b@server.test'] },
        body,
        policy: { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, deadline: Date.now() + 1500 },
        sleep: async () => {},
      });
      expect(r.error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'mail' });
      expect(r.recipients[0]?.status).toBe('deferred');
    } finally {
      stalling.close();
    }
  }, 10_000);

  it('reports a connect failure as the session error with deferred recipients', async () => {
    const s = await server({});
    const port = s.port;
    await s.close();
    servers.length = 0;
    const r = await sendWithRetry({
      options: { host: '127.0.0.1', port, tls: 'none' },
      envelope: { from: 'a@client.test', to: ['b@server.test'] },
      body,
      policy: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      sleep: async () => {},
    });
    expect(r.attempts).toBe(2);
    expect(r.error).toMatchObject({ code: 'SMTP_CONNECTION', stage: 'connect', transient: true });
    expect(r.recipients[0]).toMatchObject({ status: 'deferred', reply: { code: 451 } });
    expect(r.connection).toBeUndefined();
  });
});
