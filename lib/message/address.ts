// Email addresses: parsed with Nodemailer's addressparser (no hand-written RFC 5322 parser), then checked
// strictly enough that an address can go into an SMTP command and a header without any further escaping.
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { CONTROL, spoofingProblem } from './rules.ts';

/** One mailbox. `address` is canonical: the domain is lower-case ASCII (IDN → punycode A-labels). */
export interface Mailbox {
  name?: string;
  address: string;
}

/** An address as a caller may give it: `"Name <addr>"`, a bare `addr`, or `{ name, address }`. */
export type MailboxInput = string | { name?: string; address: string };

export type AddressResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** RFC 5321 §4.5.3.1: local part 64 octets, path 256 octets (254 for the address between the brackets). */
const MAX_LOCAL_OCTETS = 64;
const MAX_ADDRESS_OCTETS = 254;
const MAX_DOMAIN_OCTETS = 253;
const MAX_NAME_CHARS = 256;

// Dot-atom local part (RFC 5322 atext), extended with any non-ASCII character (RFC 6532 UTF8-non-ascii).
const ATOM = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u0080-\\u{10FFFF}]+";
const DOT_ATOM = new RegExp(`^${ATOM}(?:\\.${ATOM})*$`, 'u');
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const NON_ASCII = /[^\x00-\x7f]/;

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');
const fail = (error: string): { ok: false; error: string } => ({ ok: false, error });

/** Checks a bare addr-spec (`local@domain`) and returns its canonical form. */
export function canonicalAddress(addrSpec: string): AddressResult<string> {
  if (CONTROL.test(addrSpec)) return fail('address must not contain control characters (CR, LF, NUL, …)');
  const spoofing = spoofingProblem(addrSpec, 'address');
  if (spoofing) return fail(spoofing);
  if (/[<>\s]/.test(addrSpec)) return fail('address must not contain "<", ">" or whitespace');
  const at = addrSpec.lastIndexOf('@');
  if (at < 0) return fail(`"${addrSpec}" is not an email address (no "@")`);
  const local = addrSpec.slice(0, at);
  const domain = addrSpec.slice(at + 1);
  if (local.length === 0) return fail('address has an empty local part');
  if (local.startsWith('"')) return fail('quoted local parts are not supported');
  if (!DOT_ATOM.test(local)) return fail(`local part "${local}" has a character that is not allowed`);
  if (utf8Length(local) > MAX_LOCAL_OCTETS)
    return fail(`local part is longer than ${MAX_LOCAL_OCTETS} octets`);
  const asciiDomain = canonicalDomain(domain);
  if (!asciiDomain.ok) return asciiDomain;
  const address = `${local}@${asciiDomain.value}`;
  if (utf8Length(address) > MAX_ADDRESS_OCTETS)
    return fail(`address is longer than ${MAX_ADDRESS_OCTETS} octets`);
  return { ok: true, value: address };
}

/** Lower-case ASCII form of a host name; an internationalised domain becomes A-labels (no SMTPUTF8 needed). */
function canonicalDomain(domain: string): AddressResult<string> {
  if (domain.length === 0) return fail('address has an empty domain');
  if (domain.startsWith('[')) return fail('address literals ([…]) are not supported as a domain');
  const ascii = domainToASCII(domain);
  if (ascii === '') return fail(`"${domain}" is not a valid domain name`);
  if (utf8Length(ascii) > MAX_DOMAIN_OCTETS) return fail(`domain is longer than ${MAX_DOMAIN_OCTETS} octets`);
  const labels = ascii.split('.');
  if (!labels.every((label) => LABEL.test(label))) return fail(`"${domain}" is not a valid domain name`);
  if (/^[0-9]+$/.test(labels[labels.length - 1]!))
    return fail(`"${domain}" is an IP address, not a domain name`);
  return { ok: true, value: ascii };
}

function checkName(name: string | undefined): AddressResult<string | undefined> {
  if (name === undefined || name === '') return { ok: true, value: undefined };
  if (CONTROL.test(name)) return fail('display name must not contain control characters (CR, LF, NUL, …)');
  const spoofing = spoofingProblem(name, 'display name');
  if (spoofing) return fail(spoofing);
  if (name.length > MAX_NAME_CHARS) return fail(`display name is longer than ${MAX_NAME_CHARS} characters`);
  return { ok: true, value: name };
}

function mailbox(name: string | undefined, addrSpec: string): AddressResult<Mailbox> {
  const checkedName = checkName(name);
  if (!checkedName.ok) return checkedName;
  const address = canonicalAddress(addrSpec);
  if (!address.ok) return address;
  return {
    ok: true,
    value: checkedName.value
      ? { name: checkedName.value, address: address.value }
      : { address: address.value },
  };
}

/** Parses an address-list string (`"Doe, John" <j@x.com>, k@y.org`). Groups are refused. */
export function parseAddressList(input: string): AddressResult<Mailbox[]> {
  // Checked before parsing: a parser that tolerates a CR/LF would hand us a "valid" remainder.
  if (CONTROL.test(input)) return fail('address must not contain control characters (CR, LF, NUL, …)');
  // Before parsing too: a lone surrogate could be dropped or replaced by the parser, and the ledger would
  // then list another address than the one sent.
  const spoofing = spoofingProblem(input, 'address');
  if (spoofing) return fail(spoofing);
  if (input.trim() === '') return fail('address is empty');
  const parsed = addressparser(input);
  if (parsed.length === 0) return fail(`"${input}" is not an email address`);
  const mailboxes: Mailbox[] = [];
  for (const entry of parsed) {
    if (entry.group !== undefined) {
      return fail(`"${input}" is not an email address (address groups such as "name: …;" are not supported)`);
    }
    if (entry.address === '') return fail(`"${entry.name}" is not an email address`);
    // addressparser reads "a@x.com b@y.com" as the name "b@y.com" of a@x.com: a missing comma would
    // silently drop a recipient, so a name needs the address in angle brackets.
    if (entry.name !== '' && !input.includes('<')) {
      return fail(`"${input}": separate addresses with commas, or put the address after a name in <…>`);
    }
    const result = mailbox(entry.name, entry.address);
    if (!result.ok) return result;
    mailboxes.push(result.value);
  }
  return { ok: true, value: mailboxes };
}

/** Parses exactly one mailbox, from a string or from `{ name, address }` (address then a bare addr-spec). */
export function parseAddress(input: MailboxInput): AddressResult<Mailbox> {
  if (typeof input !== 'string') return mailbox(input.name, input.address);
  const list = parseAddressList(input);
  if (!list.ok) return list;
  if (list.value.length !== 1) return fail(`expected one address, found ${list.value.length}`);
  return { ok: true, value: list.value[0]! };
}

/**
 * Whether the address needs the SMTPUTF8 extension (RFC 6531): true for a non-ASCII local part. A non-ASCII
 * domain alone does not, since canonical addresses carry it as punycode.
 */
export function needsSmtpUtf8(address: string): boolean {
  const at = address.lastIndexOf('@');
  return NON_ASCII.test(at < 0 ? address : address.slice(0, at));
}
