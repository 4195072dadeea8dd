// The suppression rule (which replies put an address on the list), address keying, and the ledger and event
// transitions of a suppressed recipient.
import { describe, expect, it } from 'vitest';
import { eventsOf } from '../../lib/delivery/events.ts';
import { suppress } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import {
  type SuppressionEntry,
  suppressingReason,
  suppressionAddress,
  suppressionKeysOf,
} from '../../lib/delivery/suppression.ts';

const reply = (code: number, enhanced?: string) => ({
  code,
  ...(enhanced ? { enhanced } : {}),
  lines: ['x'],
});

describe('suppressingReason', () => {
  it.each([
    ['5.1.1', 'bad destination mailbox address'],
    ['5.1.2', 'bad destination system address'],
    ['5.1.3', 'bad destination mailbox address syntax'],
    ['5.1.6', 'destination mailbox has moved, no forwarding address'],
    ['5.1.10', 'recipient address has a null MX'],
    ['5.2.1', 'mailbox disabled, not accepting messages'],
  ])('%s suppresses (%s)', (code, meaning) => {
    expect(suppressingReason(reply(550, code))).toBe(`${code} ${meaning}`);
  });

  it.each([
    ['5.7.1 (policy)', reply(550, '5.7.1')],
    ['5.7.26 (DMARC)', reply(550, '5.7.26')],
    ['5.2.2 (mailbox full)', reply(552, '5.2.2')],
    ['5.3.4 (too big)', reply(552, '5.3.4')],
    ['5.1.11 (not in the list)', reply(550, '5.1.11')],
    ['4.1.1 (transient)', reply(450, '4.1.1')],
    ['a 550 without an enhanced code', reply(550)],
    ['no reply', undefined],
  ])('%s does not', (_, r) => {
    expect(suppressingReason(r)).toBeUndefined();
  });
});

describe('suppressionAddress', () => {
  it('lower-cases the domain, keeps the local part, and keys a domain as *@domain', () => {
    expect(suppressionAddress('Ben@Example.COM')).toEqual({ ok: true, address: 'Ben@example.com' });
    expect(suppressionAddress('*@Example.COM')).toEqual({ ok: true, address: '*@example.com' });
    expect(suppressionAddress('ben@bücher.example')).toEqual({
      ok: true,
      address: 'ben@xn--bcher-kva.example',
    });
    expect(suppressionKeysOf('ben@example.com')).toEqual(['ben@example.com', '*@example.com']);
  });

  it('refuses what is not an address', () => {
    for (const bad of ['ben', '@example.com', 'ben@', 'a\r\nb@example.com', 'ben@[127.0.0.1]', '*@'])
      expect(suppressionAddress(bad).ok).toBe(false);
  });
});

const T0 = '2026-12-04T10:00:00.000Z';
const entry: SuppressionEntry = {
  address: 'b@x.test',
  source: 'bounce',
  reason: '5.1.1 bad destination mailbox address',
  createdAt: '2026-11-30T09:00:00.000Z',
};
function record(states: StatusRecord['recipients'][number]['state'][]): StatusRecord {
  return {
    id: '01KBQ7N3R5X2W8Y9Z0A1B2C3D4',
    state: 'queued',
    createdAt: T0,
    updatedAt: T0,
    messageId: '<m@x.test>',
    from: 'a@x.test',
    recipients: states.map((state, i) => ({
      address: ['b@x.test', 'c@x.test'][i]!,
      kind: 'to',
      state,
      updatedAt: T0,
    })),
    attempts: 0,
    transcripts: [],
  };
}

describe('suppress', () => {
  const now = new Date('2026-12-04T11:00:00Z');
  it('suppresses the open recipients on the list, with the reason, and leaves the others open', () => {
    const after = suppress(record(['queued', 'queued']), new Map([['b@x.test', entry]]), now);
    expect(after.state).toBe('queued');
    expect(after.recipients[0]).toMatchObject({
      state: 'suppressed',
      error: 'suppressed: bounce (5.1.1 bad destination mailbox address, since 2026-11-30)',
    });
    expect(after.recipients[1]!.state).toBe('queued');
  });

  it('settles a message with nobody left: failed, or partially_sent after a delivery', () => {
    const matches = new Map([['b@x.test', entry]]);
    expect(suppress(record(['queued']), matches, now).state).toBe('failed');
    expect(suppress(record(['queued', 'delivered']), matches, now).state).toBe('partially_sent');
  });

  it('leaves a settled recipient and a record without matches as they are', () => {
    const delivered = record(['delivered']);
    expect(suppress(delivered, new Map([['b@x.test', entry]]), now)).toBe(delivered);
  });

  it('gives one recipient.suppressed event with the reason', () => {
    const before = record(['queued', 'queued']);
    const after = suppress(before, new Map([['b@x.test', entry]]), now);
    const events = eventsOf({ before, after, version: 2 }).filter((e) => e.type === 'recipient.suppressed');
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ recipient: 'b@x.test', error: after.recipients[0]!.error });
  });
});
