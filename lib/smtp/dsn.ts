// Delivery status notification parameters (RFC 3461 §4): RET= and ENVID= on MAIL, NOTIFY= and ORCPT= on
// RCPT, their values in xtext. Pure; checked before anything is written.
import { SmtpError } from './errors.ts';
import type { DsnOptions } from './types.ts';

const NOTIFY_VALUES: ReadonlySet<string> = new Set(['success', 'failure', 'delay']);
/** RFC 3461 §4.4: printable US-ASCII (graphic and space), at most 100 characters. */
const ENVID = /^[\x20-\x7e]{1,100}$/;

/** RFC 3461 §4: "+", "=" and every octet outside "!".."~" become "+HH" (upper-case hex of the octet). */
export function xtext(value: string): string {
  let out = '';
  for (const octet of Buffer.from(value, 'utf8')) {
    const plain = octet >= 0x21 && octet <= 0x7e && octet !== 0x2b && octet !== 0x3d;
    out += plain ? String.fromCharCode(octet) : `+${octet.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** RFC 6533 §3 utf-8-addr-unitext, for an address that needs SMTPUTF8: UTF-8 stays as it is; "+", "=",
 *  "\" and anything below "!" become `\x{HH}`. */
function utf8AddressText(address: string): string {
  let out = '';
  for (const char of address) {
    const point = char.codePointAt(0)!;
    const encoded = point < 0x21 || point === 0x2b || point === 0x3d || point === 0x5c || point === 0x7f;
    out += encoded ? `\\x{${point.toString(16).toUpperCase().padStart(2, '0')}}` : char;
  }
  return out;
}

/** ORCPT= for a recipient as it goes on the wire: `rfc822;` + xtext, or `utf-8;` (RFC 6533) when the
 *  address itself is non-ASCII. */
export function orcpt(wireAddress: string): string {
  return /^[\x20-\x7e]*$/.test(wireAddress)
    ? `ORCPT=rfc822;${xtext(wireAddress)}`
    : `ORCPT=utf-8;${utf8AddressText(wireAddress)}`;
}

export interface DsnParams {
  /** ` RET=… ENVID=…` (each only when asked for), to append to MAIL. */
  mail: string;
  /** ` NOTIFY=…` or empty, to append to each RCPT (before its ORCPT). */
  notify: string;
}

const invalid = (message: string, stage: 'mail' | 'rcpt' = 'mail') =>
  new SmtpError('SMTP_INVALID_ARGUMENT', message, { stage });

/** Checks envelope.dsn and builds its parameters; throws SMTP_INVALID_ARGUMENT for a bad value. */
export function dsnParams(dsn: DsnOptions): DsnParams {
  if (dsn === null || typeof dsn !== 'object') throw invalid('envelope.dsn must be an object');
  let mail = '';
  if (dsn.ret !== undefined) {
    if (dsn.ret !== 'full' && dsn.ret !== 'hdrs') throw invalid('envelope.dsn.ret must be "full" or "hdrs"');
    mail += ` RET=${dsn.ret.toUpperCase()}`;
  }
  if (dsn.envid !== undefined) {
    if (typeof dsn.envid !== 'string' || !ENVID.test(dsn.envid)) {
      throw invalid('envelope.dsn.envid must be 1 to 100 printable ASCII characters');
    }
    mail += ` ENVID=${xtext(dsn.envid)}`;
  }
  return { mail, notify: dsn.notify === undefined ? '' : ` NOTIFY=${notifyValue(dsn.notify)}` };
}

function notifyValue(notify: readonly string[]): string {
  if (!Array.isArray(notify) || notify.length === 0) {
    throw invalid('envelope.dsn.notify must list "never", or some of "success", "failure", "delay"', 'rcpt');
  }
  if (notify.length === 1 && notify[0] === 'never') return 'NEVER';
  if (notify.some((value) => !NOTIFY_VALUES.has(value))) {
    throw invalid(
      'envelope.dsn.notify: "never" stands alone; else only "success", "failure", "delay"',
      'rcpt',
    );
  }
  if (new Set(notify).size !== notify.length)
    throw invalid('envelope.dsn.notify lists a value twice', 'rcpt');
  return notify.map((value) => value.toUpperCase()).join(',');
}
