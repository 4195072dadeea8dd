// Command arguments and the MAIL FROM / RCPT TO lines, decided before anything is written: nothing that could
// end or split a command line ever reaches the wire, and a rejected argument never leaves a half-sent
// transaction behind.
import { domainToASCII } from 'node:url';
import { dsnParams, orcpt } from './dsn.ts';
import { SmtpError } from './errors.ts';
import type { Envelope, Extensions, SmtpStage } from './types.ts';

// CR, LF and NUL end or corrupt a command line; '<' and '>' would close the path early.
const FORBIDDEN = /[\r\n\0<>]/;
// Any other control character is never legitimate in an address either.
const ADDRESS_FORBIDDEN = /[\x00-\x1f\x7f<>]/;
// Non-ASCII in an address needs SMTPUTF8 (RFC 6531).
const NON_ASCII = /[^\x00-\x7f]/;

export function checkArgument(value: string, what: string, stage: SmtpStage): void {
  if (FORBIDDEN.test(value)) {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} contains CR, LF, NUL, '<' or '>'`, { stage });
  }
}

/** How an address goes on the wire, and whether that needs SMTPUTF8. */
export interface WireAddress {
  wire: string;
  utf8: boolean;
}

/** Checks a mailbox for MAIL FROM / RCPT TO (empty allowed only for the null reverse-path). A non-ASCII
 *  domain with an ASCII local part is sent as its A-label (RFC 5890), which needs no SMTPUTF8. */
export function checkAddress(
  address: unknown,
  what: string,
  stage: SmtpStage,
  allowEmpty: boolean,
): WireAddress {
  if (typeof address !== 'string') {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} must be a string`, { stage });
  }
  if (address.length === 0) {
    if (allowEmpty) return { wire: '', utf8: false };
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} is empty`, { stage });
  }
  if (ADDRESS_FORBIDDEN.test(address)) {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} contains a control character, '<' or '>'`, {
      stage,
    });
  }
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the brackets.
  if (Buffer.byteLength(address) > 254) {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} is longer than 254 octets`, { stage });
  }
  if (!NON_ASCII.test(address)) return { wire: address, utf8: false };
  const at = address.lastIndexOf('@');
  const local = address.slice(0, Math.max(at, 0));
  if (at > 0 && !NON_ASCII.test(local)) {
    const domain = domainToASCII(address.slice(at + 1));
    if (domain) return { wire: `${local}@${domain}`, utf8: false };
  }
  return { wire: address, utf8: true };
}

export interface EnvelopeLines {
  mail: string;
  rcpts: string[];
  recipients: string[];
  /** Transcript events about the envelope (a DSN request the server cannot take). */
  notes: string[];
}

export interface BodyFacts {
  /** Octets of the normalised message, when known before sending. */
  size?: number;
  /** The body has octets above 127 (detected for in-memory bodies). */
  eightBit: boolean;
}

/** How the connection is protected, for REQUIRETLS. */
export interface LinkFacts {
  /** TLS is on (implicit, or after STARTTLS). */
  tls: boolean;
  /** The server's certificate was verified (rejectUnauthorized was not turned off). */
  verified: boolean;
}

export const DSN_NOT_OFFERED = 'server does not offer DSN: sent without RET/ENVID/NOTIFY/ORCPT';

export function envelopeLines(
  envelope: Envelope,
  extensions: Extensions,
  body: BodyFacts,
  link: LinkFacts = { tls: false, verified: false },
): EnvelopeLines {
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
  let params = messageParams(envelope, extensions, body, utf8);

  const dsn = envelope.dsn === undefined ? undefined : dsnParams(envelope.dsn);
  const notes: string[] = [];
  if (dsn && !extensions.dsn) notes.push(DSN_NOT_OFFERED);
  const withDsn = dsn !== undefined && extensions.dsn;
  if (withDsn) params += dsn.mail;
  if (envelope.requireTls === true) {
    checkRequireTls(extensions, link);
    params += ' REQUIRETLS';
  }
  return {
    mail: `MAIL FROM:<${sender.wire}>${params}`,
    rcpts: recipients.map((r) => `RCPT TO:<${r.wire}>${withDsn ? `${dsn.notify} ${orcpt(r.wire)}` : ''}`),
    recipients: [...to],
    notes,
  };
}

/** SIZE=, BODY=8BITMIME and SMTPUTF8: what the message needs, or a typed error when the server lacks it. */
function messageParams(envelope: Envelope, extensions: Extensions, body: BodyFacts, utf8: boolean): string {
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
  return params;
}

/** RFC 8689 §4.2.1: REQUIRETLS only over TLS with a verified certificate, and only to a server offering it;
 *  otherwise the message is not sent at all. */
function checkRequireTls(extensions: Extensions, link: LinkFacts): void {
  const problem = !link.tls
    ? 'the connection is not TLS-secured'
    : !link.verified
      ? "the server's certificate is not verified (rejectUnauthorized is false)"
      : !extensions.requireTls
        ? 'the server does not offer REQUIRETLS'
        : undefined;
  if (problem) {
    throw new SmtpError('SMTP_REQUIRETLS_UNSUPPORTED', `REQUIRETLS requested but ${problem}: not sent`, {
      stage: 'mail',
    });
  }
}
