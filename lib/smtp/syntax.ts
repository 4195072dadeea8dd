// Command-argument checks: nothing that could end or split a command line ever reaches the wire.
import { domainToASCII } from 'node:url';
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
