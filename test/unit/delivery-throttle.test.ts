// Which replies mean "the relay is throttling us" (lib/delivery/throttle.ts): one named row per case.
import { describe, expect, it } from 'vitest';
import { isThrottlingFailure, isThrottlingReply } from '../../lib/delivery/throttle.ts';
import type { Reply } from '../../lib/smtp/types.ts';

/** A reply as lib/smtp's parser builds it: `enhanced` only when the text starts with one. */
function reply(code: number, text: string): Reply {
  const enhanced = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/.exec(text)?.[1];
  return { code, ...(enhanced ? { enhanced } : {}), lines: [text] };
}

const cases: Array<[name: string, reply: Reply, throttling: boolean]> = [
  // 421: service not available, closing — always the relay's problem.
  ['421 with 4.7.0 and rate text', reply(421, '4.7.0 Too many messages, slow down'), true],
  ['421 without an enhanced code', reply(421, 'mail.example.org Service not available'), true],
  ['421 4.4.2 timeout, closing', reply(421, '4.4.2 Timeout - closing connection'), true],
  ['421 4.3.2 shutting down', reply(421, '4.3.2 System not accepting network messages'), true],
  // 454: SES throttling, and the TLS / AUTH temporary failures.
  ['454 SES throttling', reply(454, 'Throttling failure: Maximum sending rate exceeded.'), true],
  ['454 4.7.0 temporary authentication failure', reply(454, '4.7.0 Temporary authentication failure'), true],
  ['454 TLS not available', reply(454, 'TLS not available due to temporary reason'), true],
  // 451: policy (4.7.x) or rate text.
  ['451 4.7.0 policy, no rate text', reply(451, '4.7.0 Temporary policy rejection'), true],
  ['451 4.7.1 not authorized for now', reply(451, '4.7.1 Try again later'), true],
  ['451 4.3.0 with "rate limit"', reply(451, '4.3.0 Rate limit exceeded, try later'), true],
  ['451 without enhanced code, "too many"', reply(451, 'Too many connections from your IP'), true],
  ['451 "throttled"', reply(451, '4.4.5 Sender throttled'), true],
  ['451 "Slow Down" in another case', reply(451, 'Please SLOW DOWN'), true],
  ['451 4.3.0 local error, no rate text', reply(451, '4.3.0 Temporary local problem'), false],
  ['451 4.4.1 no answer from host', reply(451, '4.4.1 No answer from host'), false],
  ['451 "generate" is not "rate"', reply(451, '4.3.0 Could not generate message id'), false],
  // 450: only with rate text.
  ['450 "rate" text', reply(450, '4.2.0 Sending rate exceeded for this sender'), true],
  ['450 "too many" text', reply(450, 'Too many messages in a short time'), true],
  ['450 4.2.1 mailbox busy', reply(450, '4.2.1 Mailbox busy, try again'), false],
  ['450 4.2.2 over quota', reply(450, '4.2.2 Mailbox full'), false],
  [
    '450 4.7.1 without rate text (greylisting at a relay is about one message)',
    reply(450, '4.7.1 Greylisted'),
    false,
  ],
  // Never throttling.
  ['452 too many recipients (the 452 split)', reply(452, '4.5.3 Too many recipients'), false],
  ['452 insufficient storage', reply(452, '4.3.1 Insufficient system storage'), false],
  ['550 with rate text is still permanent', reply(550, '5.7.1 Rate limit: message refused'), false],
  ['554 5.7.0 with "too many" text', reply(554, '5.7.0 Too many bad recipients, go away'), false],
  ['5xx: 535 authentication failed', reply(535, '5.7.8 Authentication credentials invalid'), false],
  ['250 ok', reply(250, '2.0.0 Ok: queued'), false],
  ['354 go ahead', reply(354, 'End data with <CR><LF>.<CR><LF>'), false],
  ['220 greeting with "rate" in the banner', reply(220, 'mx.example.org ESMTP rate limited relay'), false],
];

describe('isThrottlingReply', () => {
  it.each(cases)('%s', (_name, value, throttling) => {
    expect(isThrottlingReply(value)).toBe(throttling);
  });

  it('reads every line of a multi-line reply', () => {
    const multi: Reply = {
      code: 450,
      lines: ['Requested action not taken', 'sender rate exceeded, slow down'],
    };
    expect(isThrottlingReply(multi)).toBe(true);
  });

  it('goes by the parsed enhanced code for 451, not by text that only looks like one', () => {
    expect(isThrottlingReply({ code: 451, enhanced: '4.7.0', lines: ['policy'] })).toBe(true);
    expect(isThrottlingReply({ code: 451, lines: ['policy 4.7.0'] })).toBe(false);
  });
});

describe('isThrottlingFailure', () => {
  it('is throttling for an SMTP_REPLY error carrying a 421', () => {
    expect(isThrottlingFailure({ code: 'SMTP_REPLY', reply: reply(421, '4.7.0 slow down') })).toBe(true);
  });

  it('is throttling for an SMTP_AUTH error carrying SES 454', () => {
    expect(isThrottlingFailure({ code: 'SMTP_AUTH', reply: reply(454, 'Throttling failure') })).toBe(true);
  });

  it('is not throttling without a reply (timeout, lost connection)', () => {
    expect(isThrottlingFailure({ code: 'SMTP_TIMEOUT' })).toBe(false);
    expect(isThrottlingFailure({ code: 'SMTP_CONNECTION' })).toBe(false);
    expect(isThrottlingFailure({})).toBe(false);
  });

  it('is not throttling for a reply attached to a protocol error', () => {
    expect(isThrottlingFailure({ code: 'SMTP_PROTOCOL', reply: reply(454, 'reply to no command') })).toBe(
      false,
    );
  });

  it('follows the reply rule otherwise', () => {
    expect(isThrottlingFailure({ code: 'SMTP_REPLY', reply: reply(452, '4.5.3 Too many recipients') })).toBe(
      false,
    );
    expect(isThrottlingFailure({ reply: reply(451, '4.7.1 policy') })).toBe(true);
  });
});
