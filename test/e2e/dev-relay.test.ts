// SMTP_URL: the dev stack delivering to a real relay instead of its own dev SMTP server — here an smtp-server
// on loopback that demands AUTH; the credentials travel from the URL through the local secret to the worker.

import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { type DevStack, startDev } from '../../scripts/local/dev.ts';
import { submit, waitFor } from './dev-harness.ts';

const received: Array<{ user: unknown; to: string[]; subject?: string }> = [];
let relay: SMTPServer;
let dev: DevStack;
let dataDir: string;

beforeAll(async () => {
  relay = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: false,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === 'relay-user' && auth.password === 'p@ss:word')
        callback(null, { user: auth.username });
      else callback(new Error('535 5.7.8 bad credentials'));
    },
    onData(stream, session, callback) {
      simpleParser(stream).then((mail) => {
        received.push({
          user: session.user,
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: mail.subject,
        });
        callback();
      }, callback);
    },
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const port = (relay.server.address() as AddressInfo).port;
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-dev-relay-'));
  dev = await startDev({
    port: 0,
    dataDir,
    awsEndpoint: inject('motoEndpoint'),
    resourcePrefix: `smtpq-e2e-${randomUUID().slice(0, 8)}`,
    // The password has "@" and ":", percent-encoded as in any URL.
    smtpUrl: `smtp://relay-user:p%40ss%3Aword@127.0.0.1:${port}?tls=none`,
    log: () => {},
  });
});

afterAll(async () => {
  await dev?.stop();
  await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm run dev with SMTP_URL', () => {
  it('delivers through the given relay with the URL credentials, and runs no dev SMTP server', async () => {
    expect(dev.smtpPort).toBeUndefined();
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['z@example.org'],
      subject: 'via relay',
      text: 'x',
    });
    await waitFor('sent', async () => {
      const record = (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
      return record.state === 'sent' ? record : undefined;
    });
    expect(received).toEqual([{ user: 'relay-user', to: ['z@example.org'], subject: 'via relay' }]);
    const transcript = await (await fetch(`${dev.apiUrl}/v1/messages/${id}/transcript`)).text();
    expect(transcript).not.toContain('p@ss:word');
  });
});
