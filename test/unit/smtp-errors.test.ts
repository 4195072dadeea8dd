import { describe, expect, it } from 'vitest';
import { SmtpError } from '../../lib/smtp/index.ts';

const reply = (code: number) => ({ code, lines: ['x'] });

describe('SmtpError', () => {
  it('takes transience from the reply for server refusals: 4xx transient, 5xx permanent', () => {
    expect(SmtpError.fromReply('mail', reply(421)).transient).toBe(true);
    expect(SmtpError.fromReply('greeting', reply(554)).transient).toBe(false);
    expect(new SmtpError('SMTP_AUTH', 'x', { stage: 'auth', reply: reply(454) }).transient).toBe(true);
    expect(new SmtpError('SMTP_AUTH', 'x', { stage: 'auth', reply: reply(535) }).transient).toBe(false);
  });

  it('SMTP_TLS_REQUIRED: a STARTTLS refused with 454 is transient (RFC 3207), not offered or 5xx is permanent', () => {
    const required = (stage: 'starttls' | 'auth', refusal?: number) =>
      new SmtpError('SMTP_TLS_REQUIRED', 'x', { stage, ...(refusal ? { reply: reply(refusal) } : {}) });
    expect(required('starttls', 454).transient).toBe(true);
    expect(required('starttls', 554).transient).toBe(false);
    expect(required('starttls').transient).toBe(false);
    expect(required('auth').transient).toBe(false);
  });

  it('takes transience from the code otherwise; a protocol error is permanent whatever reply came', () => {
    expect(new SmtpError('SMTP_TIMEOUT', 'x', { stage: 'dot' }).transient).toBe(true);
    expect(new SmtpError('SMTP_CONNECTION', 'x', { stage: 'rcpt' }).transient).toBe(true);
    expect(new SmtpError('SMTP_TLS', 'x', { stage: 'starttls' }).transient).toBe(true);
    expect(new SmtpError('SMTP_PROTOCOL', 'x', { stage: 'mail', reply: reply(451) }).transient).toBe(false);
    expect(new SmtpError('SMTP_INVALID_ARGUMENT', 'x', { stage: 'rcpt' }).transient).toBe(false);
  });

  it('is an Error with a stable code, the stage and the reply', () => {
    const error = SmtpError.fromReply('rcpt', {
      code: 550,
      enhanced: '5.1.1',
      lines: ['5.1.1 no such user'],
    });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      name: 'SmtpError',
      code: 'SMTP_REPLY',
      stage: 'rcpt',
      reply: { code: 550 },
    });
    expect(error.message).toBe('rcpt rejected: 550 5.1.1 no such user');
  });
});
