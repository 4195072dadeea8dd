// What the adversarial SMTP client tests (test/integration/smtp-adversarial-*.test.ts) share: one raw server
// per test, stopped after it; the client options that reach it; and the two ways they look at an outcome.
import { afterEach, expect } from 'vitest';
import { SmtpError } from '../../lib/smtp/index.ts';
import type { SmtpClientOptions, SmtpTimeouts } from '../../lib/smtp/types.ts';
import {
  type RawConnection,
  type RawServerOptions,
  type RawSmtpServer,
  startRawSmtpServer,
} from './raw-smtp-server.ts';

/** Registers an afterEach that stops the raw server the test started (call it at the top of the file). */
export function rawServerPerTest() {
  let server: RawSmtpServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });
  return {
    async start(options: RawServerOptions): Promise<RawSmtpServer> {
      server = await startRawSmtpServer(options);
      return server;
    },
    /** The server the running test started. */
    get current(): RawSmtpServer {
      if (!server) throw new Error('no raw SMTP server was started in this test');
      return server;
    },
  };
}

/** Every client timeout set to `ms`. */
export const allTimeouts = (ms: number): SmtpTimeouts => ({
  connect: ms,
  greeting: ms,
  command: ms,
  data: ms,
  dataEnd: ms,
});

/** A plaintext client of the raw server on loopback `port`, 5 s for every wait; `extra` overrides any field. */
export const rawClientOptions = (
  port: number,
  extra: Partial<SmtpClientOptions> = {},
): SmtpClientOptions => ({
  host: '127.0.0.1',
  port,
  tls: 'none',
  name: 'client.test',
  // Generous: a protocol error must come from the parser, not from a timeout.
  timeouts: allTimeouts(5000),
  ...extra,
});

/** The SmtpError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<SmtpError> {
  const error = await promise.then(
    () => new Error('expected a rejection'),
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(SmtpError);
  return error as SmtpError;
}

/** The lines the client sent on `connection` that begin with the command `verb` (any case). */
export const sent = (connection: RawConnection, verb: string) =>
  connection.lines().filter((line) => line.toUpperCase().startsWith(verb));
