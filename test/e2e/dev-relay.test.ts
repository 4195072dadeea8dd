// SMTP_URL: the dev stack delivering to a real relay instead of its own dev SMTP server — here an smtp-server
// on loopback that demands AUTH; the credentials travel from the URL through the local secret to the worker.
// The relay counts its connections: a batch submitted at once goes out pipelined on a few connections (the
// worker takes the whole SQS batch, WORKER_BATCH_SIZE 100 within WORKER_BATCHING_WINDOW_SECONDS 1, and
// SMTP_MAX_CONNECTIONS 2 invocations at once), and each message's transcript is its own part of its
// connection's. And a throttling reply pauses the relay for every worker, visible as `relay` in the inbox.

import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { type DevStack, startDev } from '../../scripts/local/dev.ts';
import { submit, waitFor } from './dev-harness.ts';

const received: Array<{ user: unknown; to: string[]; subject?: string; session: string }> = [];
/** Sessions (connections) the relay accepted, in order. */
const connections: string[] = [];
/** RCPT addresses the relay refused with a throttling reply. */
const throttled: string[] = [];
let relay: SMTPServer;
let dev: DevStack;
let dataDir: string;
let invocationLog: string;

beforeAll(async () => {
  relay = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: false,
    logger: false,
    onConnect(session, callback) {
      connections.push(session.id);
      callback();
    },
    onAuth(auth, _session, callback) {
      if (auth.username === 'relay-user' && auth.password === 'p@ss:word')
        callback(null, { user: auth.username });
      else callback(new Error('535 5.7.8 bad credentials'));
    },
    onRcptTo(address, _session, callback) {
      // Amazon SES SMTP's answer to a burst, the first time it sees this address.
      if (address.address.startsWith('throttle-once') && !throttled.includes(address.address)) {
        throttled.push(address.address);
        const error = new Error('4.7.0 Throttling failure: Maximum sending rate exceeded.');
        (error as Error & { responseCode: number }).responseCode = 454;
        callback(error);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      simpleParser(stream).then((mail) => {
        received.push({
          user: session.user,
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: mail.subject,
          session: session.id,
        });
        callback();
      }, callback);
    },
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const port = (relay.server.address() as AddressInfo).port;
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-dev-relay-'));
  invocationLog = path.join(dataDir, 'invocations.jsonl');
  process.env.SMTPQ_DEV_INVOCATION_LOG = invocationLog;
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
  delete process.env.SMTPQ_DEV_INVOCATION_LOG;
  await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function status(id: string): Promise<StatusRecord> {
  return (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}

interface InboxList {
  messages: Array<{ id: string; state: string }>;
  capturing: boolean;
  relay?: { pausedUntil?: string; pauseLevel: number; reason?: string };
}

async function inbox(): Promise<InboxList> {
  return (await (await fetch(`${dev.apiUrl}/_inbox/api/messages`)).json()) as InboxList;
}

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
      const record = await status(id);
      return record.state === 'sent' ? record : undefined;
    });
    expect(received.map(({ session: _, ...mail }) => mail)).toEqual([
      { user: 'relay-user', to: ['z@example.org'], subject: 'via relay' },
    ]);
    const transcript = await (await fetch(`${dev.apiUrl}/v1/messages/${id}/transcript`)).text();
    expect(transcript).not.toContain('p@ss:word');
  });

  it('delivers a batch of 30 on far fewer connections than messages, each transcript with only its own RCPT', {
    timeout: 120_000,
  }, async () => {
    const N = 30;
    const addresses = Array.from({ length: N }, (_, i) => `batch-${i}@example.org`);
    const connectionsBefore = connections.length;
    const response = await fetch(`${dev.apiUrl}/v1/messages/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: addresses.map((to, i) => ({
          from: 'a@example.com',
          to: [to],
          subject: `batch ${i}`,
          text: 'x',
        })),
      }),
    });
    expect(response.status).toBe(202);
    const answer = (await response.json()) as { results: Array<{ id: string }>; queued: number };
    expect(answer.queued).toBe(N);
    const ids = answer.results.map((r) => r.id);

    const records = await waitFor(
      'the whole batch sent',
      async () => {
        const all = await Promise.all(ids.map(status));
        return all.every((r) => r.state === 'sent') ? all : undefined;
      },
      90_000,
    );
    // Each recipient got exactly one message.
    const mails = received.filter((m) => m.to.some((a) => a.startsWith('batch-')));
    expect(mails.map((m) => m.to).sort()).toEqual(addresses.map((a) => [a]).sort());
    expect(records.every((r) => r.attempts === 1)).toBe(true);

    // Far fewer SMTP connections than messages: the relay saw a handful, and the mails came over few sessions.
    const opened = connections.length - connectionsBefore;
    const sessions = new Set(mails.map((m) => m.session));
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(N / 5);
    expect(sessions.size).toBeLessThanOrEqual(opened);
    // The busiest connection carried many messages (pipelined, not one session per message).
    const perSession = new Map<string, number>();
    for (const m of mails) perSession.set(m.session, (perSession.get(m.session) ?? 0) + 1);
    expect(Math.max(...perSession.values())).toBeGreaterThanOrEqual(N / sessions.size);

    // The ledger agrees: one transcript object per connection, shared by the messages it carried.
    const ledger = new DynamoLedger(dev.clients.documents, dev.resources.table, 30);
    const entries = await ledger.getMany(ids);
    const keys = new Set([...entries.values()].flatMap((e) => e.value.transcripts.map((t) => t.key)));
    expect(entries.size).toBe(N);
    expect(keys.size).toBe(sessions.size);
    for (const key of keys) expect(key).toMatch(/^transcripts\/\d{4}-\d{2}-\d{2}\/[^/]+-\d+\.log$/);

    // Each message's transcript: the connection's own lines, then only its transaction.
    for (const [n, id] of ids.entries()) {
      const transcript = await (await fetch(`${dev.apiUrl}/v1/messages/${id}/transcript?attempt=1`)).text();
      expect(transcript).toMatch(/C: EHLO /);
      expect(transcript.match(/C: RCPT TO:<[^>]*>/g)).toEqual([`C: RCPT TO:<${addresses[n]}>`]);
      expect(transcript.match(/C: MAIL FROM:/g)).toHaveLength(1);
      expect(transcript).toMatch(/S: 250 /);
    }

    // The poller handed the worker batches bigger than one SQS receive (10) could give.
    const invocations = (await readFile(invocationLog, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { records: number; ms: number });
    expect(invocations.every((i) => i.records >= 1 && i.ms >= 0)).toBe(true);
    expect(Math.max(...invocations.map((i) => i.records))).toBeGreaterThan(10);
  });

  it('pauses the relay for every worker on a throttling reply, shows it as `relay` in the inbox, and recovers', {
    timeout: 120_000,
  }, async () => {
    const before = await inbox();
    expect(before.capturing).toBe(false);
    expect(before.relay).toEqual({ pauseLevel: 0 });

    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['throttle-once@example.org'],
      subject: 'throttled',
      text: 'x',
    });
    const paused = await waitFor('the relay paused', async () => {
      const list = await inbox();
      return list.relay?.pausedUntil ? list : undefined;
    });
    expect(Date.parse(paused.relay!.pausedUntil!)).toBeGreaterThan(Date.now() - 1000);
    expect(paused.relay!.pauseLevel).toBeGreaterThanOrEqual(1);
    expect(paused.relay!.reason).toMatch(/^454 /);
    const deferred = await status(id);
    expect(deferred.recipients[0]).toMatchObject({ state: 'deferred', reply: { code: 454 } });

    // The pause ends by itself; the message goes out after it, and a clean batch resets the level.
    const sent = await waitFor('sent after the pause', async () => {
      const record = await status(id);
      return record.state === 'sent' ? record : undefined;
    });
    expect(sent.attempts).toBe(2);
    expect(Date.parse(sent.updatedAt)).toBeGreaterThanOrEqual(Date.parse(paused.relay!.pausedUntil!));
    expect(received.filter((m) => m.to.includes('throttle-once@example.org'))).toHaveLength(1);
    await waitFor('the relay recovered', async () => {
      const list = await inbox();
      return list.relay?.pauseLevel === 0 && list.relay.pausedUntil === undefined ? true : undefined;
    });
  });
});
