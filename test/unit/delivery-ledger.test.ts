import { describe, expect, it } from 'vitest';
import {
  applyResults,
  claim,
  failMessage,
  finishAttempt,
  giveUp,
  leaseHeldByOther,
  overallState,
  pendingAddresses,
} from '../../lib/delivery/ledger.ts';
import type {
  RecipientRecord,
  RecipientState,
  StatusRecord,
  TranscriptRef,
} from '../../lib/delivery/ports.ts';

const T0 = new Date('2026-11-28T10:00:00Z');
const later = (s: number) => new Date(T0.getTime() + s * 1000);
const rcpt = (address: string, state: RecipientState = 'queued'): RecipientRecord => ({
  address,
  kind: 'to',
  state,
  updatedAt: T0.toISOString(),
});
const record = (recipients: RecipientRecord[]): StatusRecord => ({
  id: 'm1',
  state: 'queued',
  createdAt: T0.toISOString(),
  updatedAt: T0.toISOString(),
  messageId: '<m1@smtpq.test>',
  from: 'a@x.test',
  recipients,
  attempts: 0,
  transcripts: [],
});

describe('overallState', () => {
  it.each([
    [['delivered', 'delivered'], 'sent'],
    [['delivered', 'failed'], 'partially_sent'],
    [['failed', 'failed'], 'failed'],
    [['delivered', 'deferred', 'failed'], 'deferred'],
    [['queued'], 'deferred'],
    [[], 'failed'],
  ] as const)('%j → %s', (states, expected) => {
    expect(overallState(states.map((s, i) => rcpt(`r${i}@x.test`, s)))).toBe(expected);
  });
});

describe('pendingAddresses', () => {
  it('lists the queued and deferred recipients once each', () => {
    const r = record([
      rcpt('a@x.test'),
      rcpt('b@x.test', 'delivered'),
      rcpt('c@x.test', 'deferred'),
      rcpt('a@x.test'),
    ]);
    expect(pendingAddresses(r)).toEqual(['a@x.test', 'c@x.test']);
  });
});

describe('claim and lease', () => {
  it('marks the record sending, counts the attempt and takes a lease', () => {
    const claimed = claim(record([rcpt('a@x.test')]), 'w1', T0, later(60));
    expect(claimed).toMatchObject({
      state: 'sending',
      attempts: 1,
      lease: { owner: 'w1', until: later(60).toISOString() },
    });
  });

  it('a live lease of another owner blocks; an expired one or our own does not', () => {
    const claimed = claim(record([rcpt('a@x.test')]), 'w1', T0, later(60));
    expect(leaseHeldByOther(claimed, 'w2', later(30))).toBe(true);
    expect(leaseHeldByOther(claimed, 'w1', later(30))).toBe(false);
    expect(leaseHeldByOther(claimed, 'w2', later(61))).toBe(false);
  });
});

describe('applyResults', () => {
  it('updates addressed open recipients and never un-delivers a final one', () => {
    const before = [
      rcpt('a@x.test'),
      rcpt('b@x.test', 'delivered'),
      rcpt('c@x.test', 'deferred'),
      rcpt('d@x.test'),
    ];
    const after = applyResults(
      before,
      new Map([
        ['a@x.test', { state: 'delivered', reply: { code: 250, lines: ['ok'] } }],
        ['b@x.test', { state: 'failed', reply: { code: 550, lines: ['no'] } }],
        ['c@x.test', { state: 'failed', reply: { code: 550, lines: ['no'] } }],
      ] as const),
      later(5),
    );
    expect(after.map((r) => r.state)).toEqual(['delivered', 'delivered', 'failed', 'queued']);
    expect(after[2]!.reply?.code).toBe(550);
  });
});

describe('finishAttempt', () => {
  const ref = (attempt: number, connection: number, lines: [number, number][] = [[0, 9]]): TranscriptRef => ({
    attempt,
    key: `transcripts/2026-11-28/w${attempt}-${connection}.log`,
    lines,
  });

  it("releases the lease, records the attempt's transcript part and the next attempt when deferred", () => {
    const claimed = claim(record([rcpt('a@x.test'), rcpt('b@x.test')]), 'w1', T0, later(60));
    const recipients = [rcpt('a@x.test', 'delivered'), rcpt('b@x.test', 'deferred')];
    const done = finishAttempt(
      claimed,
      { recipients, transcripts: [ref(1, 1)], nextAttemptAt: later(300) },
      later(2),
    );
    expect(done).toMatchObject({
      state: 'deferred',
      transcripts: [ref(1, 1)],
      nextAttemptAt: later(300).toISOString(),
    });
    expect(done.lease).toBeUndefined();
  });

  it('appends the parts of an attempt that used two connections after those of earlier attempts', () => {
    const claimed = { ...claim(record([rcpt('a@x.test')]), 'w2', T0, later(60)), transcripts: [ref(1, 1)] };
    const done = finishAttempt(
      claimed,
      { recipients: [rcpt('a@x.test', 'delivered')], transcripts: [ref(2, 1), ref(2, 2)] },
      later(2),
    );
    expect(done.transcripts).toEqual([ref(1, 1), ref(2, 1), ref(2, 2)]);
  });

  it('does not repeat a part already recorded (an outcome merged into a record after a lost race)', () => {
    const claimed = { ...claim(record([rcpt('a@x.test')]), 'w1', T0, later(60)), transcripts: [ref(1, 1)] };
    const done = finishAttempt(
      claimed,
      { recipients: [rcpt('a@x.test', 'delivered')], transcripts: [ref(1, 1, [[0, 12]])] },
      later(2),
    );
    expect(done.transcripts).toEqual([ref(1, 1)]);
  });

  it('keeps the transcripts as they are when the attempt brings none', () => {
    const claimed = { ...claim(record([rcpt('a@x.test')]), 'w1', T0, later(60)), transcripts: [ref(1, 1)] };
    const done = finishAttempt(claimed, { recipients: [rcpt('a@x.test', 'delivered')] }, later(2));
    expect(done).toMatchObject({ state: 'sent', transcripts: [ref(1, 1)] });
  });

  it('gives up: open recipients fail with the reason and the last error', () => {
    const recipients = giveUp(
      [rcpt('a@x.test', 'delivered'), { ...rcpt('b@x.test', 'deferred'), error: '451 busy' }],
      'too old',
      later(9),
    );
    const done = finishAttempt(record(recipients), { recipients, error: 'too old' }, later(9));
    expect(done.state).toBe('partially_sent');
    expect(done.recipients[1]).toMatchObject({ state: 'failed', error: 'too old; last: 451 busy' });
    expect(done.nextAttemptAt).toBeUndefined();
  });
});

describe('failMessage', () => {
  it('fails every open recipient with the reason', () => {
    const failed = failMessage(
      record([rcpt('a@x.test'), rcpt('b@x.test', 'delivered')]),
      'payload missing',
      later(1),
    );
    expect(failed).toMatchObject({ state: 'partially_sent', error: 'payload missing' });
    expect(failed.recipients[0]).toMatchObject({ state: 'failed', error: 'payload missing' });
  });
});
