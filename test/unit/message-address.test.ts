import { describe, expect, it } from 'vitest';
import {
  canonicalAddress,
  needsSmtpUtf8,
  parseAddress,
  parseAddressList,
} from '../../lib/message/address.ts';

describe('parseAddress', () => {
  it('parses a bare address and a named one', () => {
    expect(parseAddress('bob@example.com')).toEqual({ ok: true, value: { address: 'bob@example.com' } });
    expect(parseAddress('Bob Smith <bob@example.com>')).toEqual({
      ok: true,
      value: { name: 'Bob Smith', address: 'bob@example.com' },
    });
    expect(parseAddress('<bob@example.com>')).toEqual({ ok: true, value: { address: 'bob@example.com' } });
  });

  it('keeps commas and quotes of a quoted display name', () => {
    expect(parseAddress('"Doe, John" <john@example.com>')).toEqual({
      ok: true,
      value: { name: 'Doe, John', address: 'john@example.com' },
    });
    expect(parseAddress('"Say \\"hi\\"" <hi@example.com>')).toEqual({
      ok: true,
      value: { name: 'Say "hi"', address: 'hi@example.com' },
    });
  });

  it('accepts { name, address } and checks the address as a bare addr-spec', () => {
    expect(parseAddress({ name: 'Ann', address: 'ann@Example.COM' })).toEqual({
      ok: true,
      value: { name: 'Ann', address: 'ann@example.com' },
    });
    expect(parseAddress({ name: 'Ann', address: 'Ann <ann@example.com>' }).ok).toBe(false);
    expect(parseAddress({ name: 'Ann\r\nBcc: x@y.com', address: 'ann@example.com' }).ok).toBe(false);
  });

  it('reads a needlessly quoted local part as the plain one it equals', () => {
    expect(parseAddress('"quoted"@example.com')).toEqual({
      ok: true,
      value: { address: 'quoted@example.com' },
    });
  });

  it('lower-cases the domain but keeps the local part as given', () => {
    expect(parseAddress('Bob.Smith@Example.COM')).toEqual({
      ok: true,
      value: { address: 'Bob.Smith@example.com' },
    });
  });

  it('refuses more than one mailbox', () => {
    const result = parseAddress('a@example.com, b@example.com');
    expect(result).toEqual({ ok: false, error: 'expected one address, found 2' });
  });

  it.each([
    ['a@b.com>\r\nRCPT TO:<x@y.com>', /control characters/],
    ['a@b.com\nBcc: x@y.com', /control characters/],
    ['a@b.com\r', /control characters/],
    ['a\u0000@b.com', /control characters/],
    ['a@b.com> RCPT TO:<x@y.com>', /not an email address/],
    ['Name <a@b.com>\t', /control characters/],
  ])('rejects the injection attempt %j', (input, message) => {
    const result = parseAddress(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });

  it.each([
    ['', /empty/],
    ['plainname', /not an email address/],
    ['@example.com', /empty local part/],
    ['bob@', /empty domain/],
    ['a..b@example.com', /local part/],
    ['.a@example.com', /local part/],
    ['a(b)@example.com', /commas/],
    ['"a,b"@example.com', /quoted local parts/],
    ['"a b"@example.com', /whitespace/],
    ['bob@-example.com', /not a valid domain/],
    ['bob@exa_mple.com', /not a valid domain/],
    ['bob@example..com', /not a valid domain/],
    ['bob@[192.0.2.1]', /address literals/],
    ['bob@192.0.2.1', /IP address/],
    ['undisclosed-recipients:;', /groups/],
    ['Team: a@example.com, b@example.com;', /groups/],
    [`${'a'.repeat(65)}@example.com`, /64 octets/],
    [`a@${'b'.repeat(64)}.com`, /not a valid domain/],
    [`a@${Array.from({ length: 30 }, () => 'abcdefghi').join('.')}`, /253 octets/],
  ])('rejects %j', (input, message) => {
    const result = parseAddress(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });

  it('converts an IDN domain to punycode, which needs no SMTPUTF8', () => {
    const result = parseAddress('Jüri <juri@jõgeva.ee>');
    expect(result).toEqual({ ok: true, value: { name: 'Jüri', address: 'juri@xn--jgeva-dua.ee' } });
    expect(needsSmtpUtf8('juri@xn--jgeva-dua.ee')).toBe(false);
    expect(needsSmtpUtf8('juri@jõgeva.ee')).toBe(false);
  });

  it('keeps a UTF-8 local part, which needs SMTPUTF8', () => {
    const result = parseAddress('用户@例子.广告');
    expect(result).toEqual({ ok: true, value: { address: '用户@xn--fsqu00a.xn--4rr70v' } });
    expect(needsSmtpUtf8('用户@xn--fsqu00a.xn--4rr70v')).toBe(true);
    expect(needsSmtpUtf8('josé@example.com')).toBe(true);
  });

  it('counts the local-part limit in octets, not characters', () => {
    expect(parseAddress(`${'é'.repeat(32)}@example.com`).ok).toBe(true);
    expect(parseAddress(`${'é'.repeat(33)}@example.com`).ok).toBe(false);
  });
});

describe('parseAddressList', () => {
  it('parses a list with quoted commas', () => {
    expect(parseAddressList('"Doe, John" <john@example.com>, ann@example.org')).toEqual({
      ok: true,
      value: [{ name: 'Doe, John', address: 'john@example.com' }, { address: 'ann@example.org' }],
    });
  });

  it('refuses two bare addresses without a comma rather than turning one into a display name', () => {
    const result = parseAddressList('a@example.com b@example.com');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/separate addresses with commas/);
  });

  it('fails the whole list on one bad entry', () => {
    const result = parseAddressList('a@example.com, nobody');
    expect(result).toEqual({ ok: false, error: '"nobody" is not an email address' });
  });
});

describe('canonicalAddress', () => {
  it('rejects angle brackets and whitespace inside the address', () => {
    expect(canonicalAddress('a<b@example.com').ok).toBe(false);
    expect(canonicalAddress('a b@example.com').ok).toBe(false);
    expect(canonicalAddress('ab@example.com>').ok).toBe(false);
  });
});
