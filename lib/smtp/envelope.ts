// Envelope checks and the MAIL FROM / RCPT TO lines, decided before anything is written: a rejected argument
// never leaves a half-sent transaction behind.
import { SmtpError } from './errors.ts';
import { checkAddress } from './syntax.ts';
import type { Envelope, Extensions } from './types.ts';

export interface EnvelopeLines {
  mail: string;
  rcpts: string[];
  recipients: string[];
}

export interface BodyFacts {
  /** Octets of the normalised message, when known before sending. */
  size?: number;
  /** The body has octets above 127 (detected for in-memory bodies). */
  eightBit: boolean;
}

export function envelopeLines(envelope: Envelope, extensions: Extensions, body: BodyFacts): EnvelopeLines {
  if (envelope === null || typeof envelope !== 'object') {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', 'envelope must be an object', { stage: 'mail' });
  }
  const { from, to } = envelope;
  if (!Array.isArray(to) || to.length === 0) {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', 'envelope.to must list at least one recipient', {
      stage: 'rcpt',
    });
  }
  const sender = checkAddress(from, 'envelope.from', 'mail', true);
  const recipients = to.map((address, i) => checkAddress(address, `envelope.to[${i}]`, 'rcpt', false));
  const utf8 = sender.utf8 || recipients.some((r) => r.utf8);

  let params = '';
  const size = envelope.size ?? body.size;
  if (size !== undefined && extensions.size !== undefined) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new SmtpError('SMTP_INVALID_ARGUMENT', 'envelope.size must be a whole number of octets', {
        stage: 'mail',
      });
    }
    if (extensions.size > 0 && size > extensions.size) {
      throw new SmtpError(
        'SMTP_SIZE',
        `message of ${size} octets exceeds the server's limit of ${extensions.size}`,
        {
          stage: 'mail',
        },
      );
    }
    params += ` SIZE=${size}`;
  }
  if (envelope.eightBit && !extensions.eightBitMime) {
    throw new SmtpError(
      'SMTP_8BIT_UNSUPPORTED',
      'the message is 8-bit and the server does not offer 8BITMIME',
      {
        stage: 'mail',
      },
    );
  }
  if ((envelope.eightBit || body.eightBit) && extensions.eightBitMime) params += ' BODY=8BITMIME';
  if (envelope.smtpUtf8 || utf8) {
    if (!extensions.smtpUtf8) {
      throw new SmtpError(
        'SMTP_SMTPUTF8_UNSUPPORTED',
        'the envelope needs SMTPUTF8 and the server does not offer it',
        {
          stage: 'mail',
        },
      );
    }
    params += ' SMTPUTF8';
  }
  return {
    mail: `MAIL FROM:<${sender.wire}>${params}`,
    rcpts: recipients.map((r) => `RCPT TO:<${r.wire}>`),
    recipients: [...to],
  };
}
