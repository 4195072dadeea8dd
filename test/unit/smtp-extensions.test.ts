import { describe, expect, it } from 'vitest';
import { parseExtensions } from '../../lib/smtp/index.ts';

const ehlo = (...lines: string[]) =>
  parseExtensions({ code: 250, lines: ['mx.example.org hello', ...lines] });

describe('parseExtensions', () => {
  it('types every extension the client uses', () => {
    const ext = ehlo(
      'PIPELINING',
      'SIZE 35882577',
      'STARTTLS',
      'AUTH LOGIN PLAIN XOAUTH2 CRAM-MD5',
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'DSN',
      'CHUNKING',
    );
    expect(ext).toMatchObject({
      size: 35882577,
      pipelining: true,
      starttls: true,
      auth: ['PLAIN', 'LOGIN', 'XOAUTH2'],
      eightBitMime: true,
      smtpUtf8: true,
      enhancedStatusCodes: true,
      dsn: true,
      chunking: true,
    });
    expect(ext.keywords.get('AUTH')).toEqual(['LOGIN', 'PLAIN', 'XOAUTH2', 'CRAM-MD5']);
  });

  it('offers nothing when nothing is advertised, and never reads the greeting line as a keyword', () => {
    const ext = parseExtensions({ code: 250, lines: ['PIPELINING STARTTLS'] });
    expect(ext).toMatchObject({ pipelining: false, starttls: false, auth: [], chunking: false });
    expect(ext.size).toBeUndefined();
    expect(ext.keywords.size).toBe(0);
  });

  it('is case-insensitive and tolerates extra spaces', () => {
    const ext = ehlo('  pipelining ', 'auth   plain  login', 'Size   1000');
    expect(ext).toMatchObject({ pipelining: true, auth: ['PLAIN', 'LOGIN'], size: 1000 });
  });

  it('reads the old AUTH=… form and merges it with AUTH', () => {
    expect(ehlo('AUTH=LOGIN', 'AUTH PLAIN').auth).toEqual(['PLAIN', 'LOGIN']);
  });

  it('reads SIZE without a number as no fixed limit, and ignores a garbage limit', () => {
    expect(ehlo('SIZE').size).toBe(0);
    expect(ehlo('SIZE 0').size).toBe(0);
    expect(ehlo('SIZE lots').size).toBeUndefined();
  });

  it('keeps unknown keywords with their parameters', () => {
    expect(ehlo('X-EXPS GSSAPI NTLM', 'VRFY').keywords.get('X-EXPS')).toEqual(['GSSAPI', 'NTLM']);
  });
});
