// The events of the ledger's changes (lib/delivery/events.ts) and their webhook signatures: pure.
import { describe, expect, it } from 'vitest';
import { eventsOf, type LedgerChange } from '../../lib/delivery/events.ts';
import {
  applyResults,
  cancel,
  claim,
  finishAttempt,
  giveUp,
  newRecord,
  releaseClaim,
} from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { newWebhookSecret, signWebhook, verifyWebhook } from '../../lib/delivery/webhook-signature.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import { validateEvent } from '../support/event-schemas.ts';

const ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
const t0 = new Date('2026-12-01T10:00:00.000Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

function created(extra: Record<string, unknown> = {}): StatusRecord {
  const request = validateSendRequest({
    from: 'a@example.com',
    to: ['x@example.org', 'y@example.org'],
    text: 'hi',
    tags: { c: '1' },
    ...extra,
  });
  if (!request.ok) throw new Error(JSON.stringify(request.issues));
  return newRecord(request.value, ID, t0, { messageIdDomain: 'example.com' }).record;
}

const reply = (code: number, enhanced: string, text: string) => ({
  code,
  enhanced,
  lines: [`${enhanced} ${text}`],
});
const types = (change: LedgerChange) =>
  eventsOf(change).map((e) => [e.type, e.data.recipient].filter(Boolean).join(' '));

describe('eventsOf', () => {
  it('a new record is message.queued; with a sendAt, message.scheduled with it', () => {
    expect(types({ after: created(), version: 1 })).toEqual(['message.queued']);
    const scheduled = created({ sendAt: '2026-12-02T10:00:00Z' });
    const [event] = eventsOf({ after: scheduled, version: 1 });
    expect(event).toMatchObject({
      type: 'message.scheduled',
      timestamp: t0.toISOString(),
      data: {
        sendAt: '2026-12-02T10:00:00.000Z',
        state: 'scheduled',
        sequence: 1,
        attempt: 0,
        tags: { c: '1' },
      },
    });
    expect(validateEvent(event!)).toEqual([]);
  });

  it('a claim, and a claim given back, announce nothing', () => {
    const record = created();
    const claimed = claim(record, 'w', at(1), at(60));
    expect(eventsOf({ before: record, after: claimed, version: 2 })).toEqual([]);
    expect(eventsOf({ before: claimed, after: releaseClaim(record, at(2)), version: 3 })).toEqual([]);
  });

  it('an attempt: one event per recipient whose state it decided, then the message when final', () => {
    const claimed = claim(created(), 'w', at(1), at(60));
    const results = new Map([
      ['x@example.org', { state: 'delivered' as const, reply: reply(250, '2.0.0', 'Ok') }],
      ['y@example.org', { state: 'deferred' as const, reply: reply(451, '4.3.0', 'later') }],
    ]);
    const deferred = finishAttempt(
      claimed,
      {
        recipients: applyResults(claimed.recipients, results, at(2)),
        nextAttemptAt: at(300),
        transcripts: [{ attempt: 1, key: 'k', lines: [[0, 3]] }],
      },
      at(2),
    );
    const first = eventsOf({ before: claimed, after: deferred, version: 3 });
    expect(first.map((e) => [e.type, e.data.recipient])).toEqual([
      ['recipient.delivered', 'x@example.org'],
      ['recipient.deferred', 'y@example.org'],
    ]);
    expect(first[1]!.data).toMatchObject({
      attempt: 1,
      reply: { code: 451, enhancedCode: '4.3.0', text: '4.3.0 later' },
      nextAttemptAt: at(300).toISOString(),
      transcript: `/v1/messages/${ID}/transcript?attempt=1`,
    });
    for (const e of first) expect(validateEvent(e)).toEqual([]);

    // Deferred again on the next attempt: a new recipient.deferred (a new change), then given up.
    const again = claim(deferred, 'w', at(300), at(360));
    const deferredAgain = finishAttempt(
      again,
      {
        recipients: applyResults(
          again.recipients,
          new Map([['y@example.org', { state: 'deferred' as const, reply: reply(451, '4.3.0', 'later') }]]),
          at(301),
        ),
        nextAttemptAt: at(900),
      },
      at(301),
    );
    expect(types({ before: again, after: deferredAgain, version: 5 })).toEqual([
      'recipient.deferred y@example.org',
    ]);
    const gaveUp = finishAttempt(
      deferredAgain,
      { recipients: giveUp(deferredAgain.recipients, 'gave up', at(902)), error: 'gave up' },
      at(902),
    );
    expect(types({ before: deferredAgain, after: gaveUp, version: 6 })).toEqual([
      'recipient.failed y@example.org',
      'message.partially_sent',
    ]);
  });

  it('a cancel is message.cancelled; a record written again unchanged announces nothing', () => {
    const record = created({ sendAt: '2026-12-02T10:00:00Z' });
    expect(types({ before: record, after: cancel(record, at(5)), version: 2 })).toEqual([
      'message.cancelled',
    ]);
    expect(eventsOf({ before: record, after: record, version: 2 })).toEqual([]);
  });

  it('gives the same ids to the same change, and different ids to different changes', () => {
    const record = created();
    const change = { after: record, version: 1 };
    expect(eventsOf(change)).toEqual(eventsOf(structuredClone(change)));
    expect(eventsOf(change)[0]!.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(eventsOf({ after: record, version: 2 })[0]!.id).not.toBe(eventsOf(change)[0]!.id);
  });
});

describe('webhook signatures (Standard Webhooks)', () => {
  const secret = newWebhookSecret();
  const [event] = eventsOf({ after: created(), version: 1 });

  it('signs v1,base64(HMAC-SHA256(id.timestamp.body)) with the key bytes, and verifies it', async () => {
    const now = new Date();
    const signed = signWebhook(secret, event!, now);

    const { createHmac } = await import('node:crypto');
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key)
      .update(`${event!.id}.${signed.headers['webhook-timestamp']}.${signed.body}`)
      .digest('base64');
    expect(signed.headers).toEqual({
      'webhook-id': event!.id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': `v1,${expected}`,
    });
    expect(JSON.parse(signed.body)).toEqual({
      type: 'message.queued',
      timestamp: event!.timestamp,
      data: event!.data,
    });
    expect(verifyWebhook(secret, signed.body, signed.headers)).toEqual(JSON.parse(signed.body));
  });

  it('refuses a changed body, another secret, and a timestamp older than 5 minutes', () => {
    const signed = signWebhook(secret, event!);
    expect(() => verifyWebhook(secret, `${signed.body} `, signed.headers)).toThrow();
    expect(() => verifyWebhook(newWebhookSecret(), signed.body, signed.headers)).toThrow();
    const old = signWebhook(secret, event!, new Date(Date.now() - 6 * 60_000));
    expect(() => verifyWebhook(secret, old.body, old.headers)).toThrow(/timestamp/i);
    // Header names in any case (as a framework may hand them over).
    const upper = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook(secret, signed.body, upper).type).toBe('message.queued');
  });
});
