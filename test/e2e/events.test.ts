// Events through the whole local pipeline: submit → queue → worker → SMTP relay → ledger → its stream →
// the events handler → the EventBridge bus (moto) → an observer rule with an SQS target, and the webhook
// rule → webhook queue → the webhook handler → a listener that verifies every request's signature.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEventBridgeClient } from '../../lib/aws/event-publisher.ts';
import { EVENT_TYPES, type SmtpqEvent } from '../../lib/delivery/events.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { toSqsBody } from '../../lib/delivery/queue-message.ts';
import { newWebhookSecret, verifyWebhook } from '../../lib/delivery/webhook-signature.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { type EventObserver, observeBus } from '../support/event-observer.ts';
import { validateEvent } from '../support/event-schemas.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { startWebhookListener, type WebhookListener } from '../support/webhook-listener.ts';
import { submit, waitFor } from './dev-harness.ts';

let relay: TestSmtpServer;
let listener: WebhookListener;
let dev: DevStack;
let observer: EventObserver;
let dataDir: string;
const secret = newWebhookSecret();

beforeAll(async () => {
  relay = await startTestSmtpServer({
    tls: 'none',
    hooks: {
      rcpt: ({ address, countForAddress }) => {
        if (address?.startsWith('refused')) return { code: 550, message: '5.1.1 No such user' };
        if (address?.startsWith('later') && countForAddress === 1)
          return { code: 451, message: '4.3.0 Try again later' };
        if (address?.startsWith('never')) return { code: 451, message: '4.2.0 Mailbox busy' };
        return undefined;
      },
    },
  });
  // The first try of every recipient.deferred event fails: the webhook queue retries it.
  listener = await startWebhookListener(({ body }) => {
    const type = (JSON.parse(body) as { type: string }).type;
    const earlier = listener.received.filter((r) => r.body === body).length;
    return type === 'recipient.deferred' && earlier === 0 ? 500 : 204;
  });
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-events-e2e-'));
  process.env.RETRY_BASE_SECONDS = '1';
  process.env.RETRY_MAX_SECONDS = '2';
  process.env.RETRY_MAX_ATTEMPTS = '2';
  const { startDev } = await import('../../scripts/local/dev.ts');
  dev = await startDev({
    port: 0,
    dataDir,
    awsEndpoint: inject('motoEndpoint'),
    resourcePrefix: `smtpq-e2e-${randomUUID().slice(0, 8)}`,
    smtpUrl: `smtp://127.0.0.1:${relay.port}?tls=none`,
    webhookUrl: listener.url,
    webhookSecret: secret,
    log: () => {},
  });
  observer = await observeBus(
    createEventBridgeClient({ region: 'us-east-1', endpoint: dev.awsEndpoint }),
    dev.clients.sqs,
    dev.events!.busName,
  );
});

afterAll(async () => {
  await observer?.remove();
  await dev?.stop();
  await relay?.close();
  await listener?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const of = (id: string) => (events: SmtpqEvent[]) => events.filter((e) => e.data.messageId === id);
const summary = (events: SmtpqEvent[]) =>
  events.map((e) => [e.type, e.data.recipient].filter(Boolean).join(' '));

async function status(id: string): Promise<StatusRecord> {
  return (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}

describe('events of the ledger, on the bus and at the webhook', () => {
  it('one delivered, one deferred-then-delivered and one refused recipient: the exact sequence, each event valid', async () => {
    // Act
    const id = await submit(dev.apiUrl, {
      from: 'sender@example.com',
      to: ['ok@example.org', 'later@example.org', 'refused@example.org'],
      subject: 'events',
      text: 'hi',
      tags: { campaign: 'welcome' },
    });
    const events = of(id)(
      await observer.until((all) => of(id)(all).some((e) => e.type === 'message.partially_sent')),
    );

    // Assess: the order of the ledger's changes, recipients before their message.
    expect(summary(events)).toEqual([
      'message.queued',
      'recipient.delivered ok@example.org',
      'recipient.deferred later@example.org',
      'recipient.failed refused@example.org',
      'recipient.delivered later@example.org',
      'message.partially_sent',
    ]);
    for (const event of events) expect(validateEvent(event)).toEqual([]);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    const [, delivered, deferred, refused, deliveredLater, final] = events;
    expect(delivered!.data).toMatchObject({
      messageId: id,
      tags: { campaign: 'welcome' },
      attempt: 1,
      reply: { code: 250 },
      transcript: `/v1/messages/${id}/transcript?attempt=1`,
    });
    expect(deferred!.data).toMatchObject({
      attempt: 1,
      reply: { code: 451, enhancedCode: '4.3.0', text: expect.stringContaining('Try again later') },
      nextAttemptAt: expect.any(String),
    });
    expect(refused!.data.reply).toMatchObject({ code: 550, enhancedCode: '5.1.1' });
    expect(deliveredLater!.data).toMatchObject({
      attempt: 2,
      transcript: `/v1/messages/${id}/transcript?attempt=2`,
    });
    expect(final!.data).toMatchObject({ state: 'partially_sent', attempt: 2 });
    // The transcript each event points at is there.
    const transcript = await fetch(`${dev.apiUrl}${deferred!.data.transcript}`);
    expect(transcript.status).toBe(200);
    expect(await transcript.text()).toContain('451 4.3.0 Try again later');
  });

  it('a message given up after the retry limit: deferred, then failed with the reason', async () => {
    const id = await submit(dev.apiUrl, { from: 'sender@example.com', to: ['never@example.org'], text: 'x' });
    const events = of(id)(
      await observer.until((all) => of(id)(all).some((e) => e.type === 'message.failed')),
    );

    expect(summary(events)).toEqual([
      'message.queued',
      'recipient.deferred never@example.org',
      'recipient.failed never@example.org',
      'message.failed',
    ]);
    expect(events[2]!.data).toMatchObject({
      attempt: 2,
      reply: { code: 451, enhancedCode: '4.2.0' },
      error: expect.stringContaining('gave up after 2 attempts'),
    });
    for (const event of events) expect(validateEvent(event)).toEqual([]);
  });

  it('a redelivered queue record changes nothing and publishes nothing', async () => {
    // Prepare: a message delivered, its events all seen.
    const id = await submit(dev.apiUrl, { from: 'sender@example.com', to: ['ok2@example.org'], text: 'x' });
    await observer.until((all) => of(id)(all).some((e) => e.type === 'message.sent'));
    const before = await status(id);
    const seen = of(id)(observer.events).length;

    // Act: the same queue message again, as SQS may deliver it (at least once): the API's, rebuilt.
    const request = validateSendRequest({ from: 'sender@example.com', to: ['ok2@example.org'], text: 'x' });
    if (!request.ok) throw new Error('invalid request');
    const again = newRecord(request.value, id, new Date(before.createdAt), {
      messageIdDomain: 'smtpq.local',
    });
    expect(again.stored.messageId).toBe(before.messageId);
    await dev.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: dev.resources.queueUrl,
        MessageBody: toSqsBody({ v: 1, id, record: again.record, request: again.stored }),
      }),
    );
    // A later message on the same queue: once its events are out, the duplicate was handled before it.
    const marker = await submit(dev.apiUrl, {
      from: 'sender@example.com',
      to: ['ok3@example.org'],
      text: 'x',
    });
    await observer.until((all) => of(marker)(all).some((e) => e.type === 'message.sent'));
    await dev.events!.drain();
    await observer.poll();

    // Assess: one delivery, the record unchanged, no new event.
    expect(relay.messages.filter((m) => m.rcptTo.includes('ok2@example.org'))).toHaveLength(1);
    expect(await status(id)).toEqual(before);
    expect(of(id)(observer.events)).toHaveLength(seen);
  });

  it('every event reaches the webhook signed, in order per message; a failed POST is retried with the same id', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'sender@example.com',
      to: ['ok4@example.org', 'later4@example.org'],
      text: 'x',
    });
    const onBus = of(id)(await observer.until((all) => of(id)(all).some((e) => e.type === 'message.sent')));

    // Assess: every request verifies with the secret; the first tries came in the bus's order (a retry
    // comes later), and each event was delivered (2xx) exactly once, with the body the bus has.
    const mine = await waitFor('every event delivered to the webhook', async () => {
      const requests = listener.received
        .map((r) => ({
          ...r,
          id: String(r.headers['webhook-id']),
          payload: verifyWebhook(secret, r.body, r.headers as Record<string, string>),
        }))
        .filter((r) => r.payload.data.messageId === id);
      return requests.filter((r) => r.status < 300).length === onBus.length ? requests : undefined;
    });
    const firstTries = mine.filter((r, i) => mine.findIndex((o) => o.id === r.id) === i);
    expect(firstTries.map((r) => r.id)).toEqual(onBus.map((e) => e.id));
    const delivered = new Map(mine.filter((r) => r.status < 300).map((r) => [r.id, r.payload]));
    expect(delivered.size).toBe(onBus.length);
    for (const { id: eventId, type, timestamp, data } of onBus)
      expect(delivered.get(eventId)).toEqual({ type, timestamp, data });
    // The deferred event was refused once (500) and delivered on the retry, under the same webhook-id.
    const deferredId = onBus.find((e) => e.type === 'recipient.deferred')!.id;
    const tries = listener.received.filter((r) => r.headers['webhook-id'] === deferredId);
    expect(tries.map((t) => t.status)).toEqual([500, 204]);
    // A tampered body fails verification.
    const first = listener.received.find((r) => r.headers['webhook-id'] === onBus[0]!.id)!;
    expect(() =>
      verifyWebhook(
        secret,
        first.body.replace('message.queued', 'message.sent'),
        first.headers as Record<string, string>,
      ),
    ).toThrow();

    // The dev inbox shows the timeline and the webhook's tries.
    const inbox = (await (await fetch(`${dev.apiUrl}/_inbox/api/messages/${id}`)).json()) as {
      timeline: {
        events: SmtpqEvent[];
        webhooks: { eventId: string; status?: number; try: number; retryAt?: string }[];
      };
    };
    expect(inbox.timeline.events.map((e) => e.id)).toEqual(onBus.map((e) => e.id));
    expect(inbox.timeline.webhooks.filter((w) => w.eventId === deferredId)).toMatchObject([
      { status: 500, try: 1, retryAt: expect.any(String) },
      { status: 204, try: 2 },
    ]);
  });

  it('a scheduled message, then cancelled: message.scheduled with its sendAt, then message.cancelled', async () => {
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const id = await submit(dev.apiUrl, {
      from: 'sender@example.com',
      to: ['ok5@example.org'],
      text: 'x',
      sendAt,
    });
    expect((await fetch(`${dev.apiUrl}/v1/messages/${id}/cancel`, { method: 'POST' })).status).toBe(200);

    const events = of(id)(
      await observer.until((all) => of(id)(all).some((e) => e.type === 'message.cancelled')),
    );

    expect(summary(events)).toEqual(['message.scheduled', 'message.cancelled']);
    expect(events[0]!.data).toMatchObject({ state: 'scheduled', sendAt });
    expect(events[1]!.data).toMatchObject({ state: 'cancelled', sequence: 2 });
    for (const event of events) expect(validateEvent(event)).toEqual([]);
  });

  it('publishes only the documented types', () => {
    for (const event of observer.events) expect(EVENT_TYPES).toContain(event.type);
  });
});
