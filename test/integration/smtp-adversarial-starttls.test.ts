// STARTTLS under attack (RFC 3207 §6, "NO STARTTLS", USENIX Security 2021): response injection before the
// handshake, STARTTLS stripped or refused while TLS is required, a certificate the client must not trust.
// A server that would happily accept MAIL afterwards proves the client stopped on its own.
import { describe, expect, it } from 'vitest';
import { SmtpConnection } from '../../lib/smtp/index.ts';
import type { SmtpClientOptions } from '../../lib/smtp/types.ts';
import { createLocalCa, sharedLocalCa } from '../../scripts/local/certs.ts';
import { allTimeouts, rawClientOptions, rawServerPerTest, rejection, sent } from '../support/adversarial.ts';
import {
  acceptMessage,
  expectLine,
  greetAndEhlo,
  type RawServerOptions,
  reply,
  startTls,
  write,
} from '../support/raw-smtp-server.ts';

const rawServer = rawServerPerTest();

async function start(options: RawServerOptions) {
  const ca = await sharedLocalCa();
  return rawServer.start({ tls: { key: ca.keyPem, cert: ca.certPem }, ...options });
}

async function clientOptions(
  port: number,
  extra: Partial<SmtpClientOptions> = {},
): Promise<SmtpClientOptions> {
  const ca = await sharedLocalCa();
  return rawClientOptions(port, {
    tls: 'starttls',
    ca: ca.caPem,
    servername: 'localhost',
    timeouts: allTimeouts(3000),
    ...extra,
  });
}

/** After the upgrade: a fresh EHLO, then a message accepted — what a client fooled into going on would meet. */
const afterUpgrade = () => [...reply(/^EHLO /, '250-raw.test\r\n250 AUTH PLAIN\r\n'), ...acceptMessage()];

describe('STARTTLS response injection', () => {
  it('aborts with SMTP_PROTOCOL when bytes follow the 220 in the same segment, and never sends MAIL', async () => {
    const { port } = await start({
      script: [
        ...greetAndEhlo(['STARTTLS']),
        expectLine('STARTTLS'),
        write('220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n'),
        startTls(),
        ...afterUpgrade(),
      ],
    });

    const error = await rejection(SmtpConnection.connect(await clientOptions(port)));

    expect(error.code).toBe('SMTP_PROTOCOL');
    expect(error.stage).toBe('starttls');
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
    expect(sent(connection!, 'EHLO')).toHaveLength(1);
  });

  it('aborts when the injected bytes arrive just after the 220, and never sends MAIL', async () => {
    // The second write may land before or during the handshake: either way it is not a TLS record.
    const { port } = await start({
      script: [
        ...greetAndEhlo(['STARTTLS']),
        expectLine('STARTTLS'),
        write('220 2.0.0 Ready to start TLS\r\n', '250-injected\r\n250 AUTH PLAIN\r\n'),
        startTls(),
        ...afterUpgrade(),
      ],
      chunkPauseMs: 0,
    });

    const error = await rejection(SmtpConnection.connect(await clientOptions(port)));

    expect(['SMTP_PROTOCOL', 'SMTP_TLS']).toContain(error.code);
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
  });
});

describe('TLS required', () => {
  const stripped = () => [...greetAndEhlo(['PIPELINING', 'AUTH PLAIN LOGIN']), ...acceptMessage()];

  it('STARTTLS not offered: SMTP_TLS_REQUIRED before MAIL FROM and before AUTH', async () => {
    const { port } = await start({ script: stripped() });

    const error = await rejection(
      SmtpConnection.connect(await clientOptions(port, { auth: { user: 'u', pass: 'secret-pass' } })),
    );

    expect(error.code).toBe('SMTP_TLS_REQUIRED');
    expect(error.transient).toBe(false);
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
    expect(sent(connection!, 'AUTH')).toEqual([]);
    expect(connection!.received().includes('secret-pass')).toBe(false);
  });

  it('with requireTLS: false the same server gets the message in plaintext (the script above would accept it)', async () => {
    const { port } = await start({ script: stripped() });
    const client = await SmtpConnection.connect(await clientOptions(port, { requireTLS: false }));
    try {
      expect(client.secure).toBe(false);
      const result = await client.send(
        { from: 'a@example.test', to: ['b@example.test'] },
        'Subject: x\r\n\r\nhi\r\n',
      );
      expect(result.recipients.map((r) => r.status)).toEqual(['accepted']);
    } finally {
      client.close();
    }
  });

  it('STARTTLS answered 454: SMTP_TLS_REQUIRED, transient (RFC 3207: a temporary reason), before MAIL FROM', async () => {
    const { port } = await start({
      script: [
        ...greetAndEhlo(['STARTTLS', 'PIPELINING']),
        ...reply('STARTTLS', '454 4.7.0 TLS not available due to local problem\r\n'),
        ...acceptMessage(),
      ],
    });

    const error = await rejection(SmtpConnection.connect(await clientOptions(port)));

    expect(error.code).toBe('SMTP_TLS_REQUIRED');
    expect(error.stage).toBe('starttls');
    expect(error.reply?.code).toBe(454);
    expect(error.transient).toBe(true);
    const [connection] = await rawServer.current.settled(1);
    expect(sent(connection!, 'MAIL')).toEqual([]);
  });

  it('a certificate from an unknown CA fails the handshake with SMTP_TLS; nothing is sent over it', async () => {
    const stranger = await createLocalCa();
    const { port } = await start({
      tls: { key: stranger.keyPem, cert: stranger.certPem },
      script: [
        ...greetAndEhlo(['STARTTLS']),
        ...reply('STARTTLS', '220 2.0.0 Ready\r\n'),
        startTls(),
        ...afterUpgrade(),
      ],
    });

    const error = await rejection(SmtpConnection.connect(await clientOptions(port)));

    expect(error.code).toBe('SMTP_TLS');
    expect(error.stage).toBe('starttls');
    const [connection] = await rawServer.current.settled(1);
    expect(connection!.step).toBeLessThan(6); // the script never got past the handshake
    expect(sent(connection!, 'MAIL')).toEqual([]);
  });
});

describe('after a good upgrade', () => {
  it('forgets the plaintext EHLO: extensions are the ones advertised over TLS', async () => {
    const { port } = await start({
      script: [
        // Plaintext EHLO claims PIPELINING and CHUNKING; the TLS one does not.
        ...greetAndEhlo(['STARTTLS', 'PIPELINING', 'CHUNKING', 'SIZE 10']),
        ...reply('STARTTLS', '220 2.0.0 Ready\r\n'),
        startTls(),
        ...reply(/^EHLO /, '250-raw.test\r\n250 SIZE 100000\r\n'),
        ...acceptMessage(),
        expectLine('QUIT'),
        write('221 bye\r\n'),
      ],
    });

    const client = await SmtpConnection.connect(await clientOptions(port));
    expect(client.secure).toBe(true);
    expect(client.extensions.pipelining).toBe(false);
    expect(client.extensions.chunking).toBe(false);
    expect(client.extensions.starttls).toBe(false);
    expect(client.extensions.size).toBe(100000);
    const result = await client.send(
      { from: 'a@example.test', to: ['b@example.test'] },
      'Subject: x\r\n\r\nhi\r\n',
    );
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted']);
    await client.quit();

    const [connection] = await rawServer.current.settled(1);
    expect(connection!.error).toBeUndefined();
    expect(connection!.bodies[0]!.toString()).toBe('Subject: x\r\n\r\nhi\r\n.\r\n');
  });
});
