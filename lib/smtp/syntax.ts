// Command-argument checks: nothing that could end or split a command line ever reaches the wire.
import { SmtpError } from './errors.ts';
import type { SmtpStage } from './types.ts';

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

/** Checks a mailbox for MAIL FROM / RCPT TO (empty allowed only for the null reverse-path) and says whether it needs SMTPUTF8. */
export function checkAddress(address: unknown, what: string, stage: SmtpStage, allowEmpty: boolean): boolean {
  if (typeof address !== 'string') {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', `${what} must be a string`, { stage });
  }
  if (address.length === 0) {
    if (allowEmpty) return false;
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
  return NON_ASCII.test(address);
}
