import { describe, expect, it } from 'vitest';
import { fromFailure, fromRecipientOutcome } from '../../lib/delivery/outcome.ts';
import { SmtpError } from '../../lib/smtp/index.ts';
import type { Reply, SmtpErrorCode, SmtpStage } from '../../lib/smtp/types.ts';

const reply = (code: number, text = 'x') => ({ code, lines: [text] });
/** fromFailure of an SmtpError with these fields (SMTP_REPLY unless a code is given). */
const fromFields = (f: {
  message: string;
  code?: SmtpErrorCode;
  stage: SmtpStage;
  reply?: Reply;
  transient?: boolean;
}) => fromFailure(new SmtpError(f.code ?? 'SMTP_REPLY', f.message, f));

describe('fromRecipientOutcome', () => {
  it('maps accepted/deferred/failed onto delivered/deferred/failed with the reply', () => {
    expect(fromRecipientOutcome({ address: 'a@x.test', status: 'accepted', reply: reply(250) })).toEqual({
      state: 'delivered',
      reply: reply(250),
    });
    expect(fromRecipientOutcome({ address: 'a@x.test', status: 'deferred', reply: reply(451) }).state).toBe(
      'deferred',
    );
    expect(fromRecipientOutcome({ address: 'a@x.test', status: 'failed', reply: reply(550) }).state).toBe(
      'failed',
    );
  });
});

describe('fromFailure', () => {
  it('defers every problem with the session itself, even permanent ones', () => {
    for (const stage of ['connect', 'greeting', 'ehlo', 'starttls', 'auth'] as const) {
      const result = fromFields({ message: 'boom', stage, transient: false, reply: reply(535) });
      expect(result.state, stage).toBe('deferred');
    }
  });

  it('defers 4xx, 421 and transient errors inside a transaction', () => {
    expect(fromFields({ message: 'x', stage: 'mail', reply: reply(421), transient: true }).state).toBe(
      'deferred',
    );
    expect(fromFields({ message: 'x', stage: 'data', reply: reply(451) }).state).toBe('deferred');
    expect(fromFields({ message: 'timeout', stage: 'dot', transient: true }).state).toBe('deferred');
  });

  it('fails the recipients on a 5xx or a permanent error inside a transaction', () => {
    expect(fromFields({ message: 'x', stage: 'mail', reply: reply(553) }).state).toBe('failed');
    const utf8 = fromFields({
      message: 'needs SMTPUTF8',
      code: 'SMTP_SMTPUTF8_UNSUPPORTED',
      stage: 'mail',
      transient: false,
    });
    expect(utf8).toEqual({
      state: 'failed',
      reply: undefined,
      error: 'SMTP_SMTPUTF8_UNSUPPORTED: needs SMTPUTF8 during mail',
    });
  });

  it('defers a protocol error inside a transaction: a server glitch is not a verdict on the recipient', () => {
    const glitch = {
      message: 'malformed reply',
      code: 'SMTP_PROTOCOL' as const,
      stage: 'dot' as const,
      transient: false,
    };
    expect(fromFields(glitch).state).toBe('deferred');
    expect(fromFields({ ...glitch, reply: { code: 250, lines: ['?'] } }).state).toBe('deferred');
    expect(fromFields({ message: 'too big', code: 'SMTP_SIZE', stage: 'mail', transient: false }).state).toBe(
      'failed',
    );
  });

  it('defers an unknown error (no stage, no reply), so nothing fails for good on a bug', () => {
    expect(fromFailure(new TypeError('oops')).state).toBe('deferred');
    expect(fromFailure('string thrown').state).toBe('deferred');
  });

  it("says an error that is not smtpq's own only as internal: no SDK text, ARN or account id reaches the record", () => {
    const denied = Object.assign(
      new Error(
        'User: arn:aws:sts::123456789012:assumed-role/smtpq-Worker/x is not authorized to perform: secretsmanager:GetSecretValue',
      ),
      { name: 'AccessDeniedException', $fault: 'client' },
    );
    expect(fromFailure(denied)).toMatchObject({
      error: "INTERNAL_ERROR: the attempt broke off on an internal error (the worker's log has it)",
    });
    expect(fromFields({ message: 'timed out', code: 'SMTP_TIMEOUT', stage: 'dot' })).toMatchObject({
      error: 'SMTP_TIMEOUT: timed out during dot',
    });
  });
});
