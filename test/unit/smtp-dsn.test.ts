import { describe, expect, it } from 'vitest';
import { dsnParams, orcpt, xtext } from '../../lib/smtp/dsn.ts';
import { DSN_NOT_OFFERED, envelopeLines } from '../../lib/smtp/envelope.ts';
import { type DsnOptions, parseExtensions } from '../../lib/smtp/index.ts';

const ehlo = (...lines: string[]) => parseExtensions({ code: 250, lines: ['mx.example', ...lines] });
const withDsn = ehlo('DSN', 'SMTPUTF8', 'REQUIRETLS');
const withoutDsn = ehlo('SMTPUTF8');
const body = { eightBit: false };
const verifiedTls = { tls: true, verified: true };
const invalid = (stage: string) => expect.objectContaining({ code: 'SMTP_INVALID_ARGUMENT', stage });

describe('xtext (RFC 3461 §4)', () => {
  it('keeps "!".."~" except "+" and "=", and writes every other octet as +HH', () => {
    expect(xtext('abc-XYZ_0.9~!')).toBe('abc-XYZ_0.9~!');
    expect(xtext('a+b=c')).toBe('a+2Bb+3Dc');
    expect(xtext('a b\tc\x7f')).toBe('a+20b+09c+7F');
    expect(xtext('\r\n')).toBe('+0D+0A');
    expect(xtext('é')).toBe('+C3+A9');
    expect(xtext('')).toBe('');
  });

  it('ORCPT is rfc822 xtext for an ASCII address, utf-8 unitext (RFC 6533) for a non-ASCII one', () => {
    expect(orcpt('bob+tag@example.com')).toBe('ORCPT=rfc822;bob+2Btag@example.com');
    expect(orcpt('"a b"@example.com')).toBe('ORCPT=rfc822;"a+20b"@example.com');
    expect(orcpt('jörg+x=y@例え.jp')).toBe('ORCPT=utf-8;jörg\\x{2B}x\\x{3D}y@例え.jp');
  });
});

describe('DSN parameters', () => {
  it('builds RET, ENVID (xtext) and NOTIFY in RFC spelling', () => {
    expect(dsnParams({ notify: ['success', 'failure', 'delay'], ret: 'hdrs', envid: 'id 1+2' })).toEqual({
      mail: ' RET=HDRS ENVID=id+201+2B2',
      notify: ' NOTIFY=SUCCESS,FAILURE,DELAY',
    });
    expect(dsnParams({ notify: ['never'] })).toEqual({ mail: '', notify: ' NOTIFY=NEVER' });
    expect(dsnParams({ ret: 'full' })).toEqual({ mail: ' RET=FULL', notify: '' });
  });

  it.each<[string, unknown, string]>([
    ['never combined', { notify: ['never', 'success'] }, 'rcpt'],
    ['an empty notify', { notify: [] }, 'rcpt'],
    ['an unknown notify value', { notify: ['always'] }, 'rcpt'],
    ['a repeated notify value', { notify: ['failure', 'failure'] }, 'rcpt'],
    ['an unknown ret', { ret: 'body' }, 'mail'],
    ['an empty envid', { envid: '' }, 'mail'],
    ['an envid over 100 characters', { envid: 'x'.repeat(101) }, 'mail'],
    ['an envid with CR LF', { envid: 'a\r\nRCPT TO:<x@y>' }, 'mail'],
    ['a non-ASCII envid', { envid: 'café' }, 'mail'],
  ])('rejects %s before anything is sent', (_, dsn, stage) => {
    expect(() => dsnParams(dsn as DsnOptions)).toThrow(invalid(stage));
    expect(() =>
      envelopeLines({ from: 'a@b.example', to: ['c@d.example'], dsn: dsn as DsnOptions }, withoutDsn, body),
    ).toThrow(invalid(stage));
  });

  it('accepts an envid of exactly 100 printable characters', () => {
    expect(dsnParams({ envid: 'x'.repeat(100) }).mail).toBe(` ENVID=${'x'.repeat(100)}`);
  });
});

describe('envelope lines with DSN and REQUIRETLS', () => {
  const envelope = {
    from: 'a@b.example',
    to: ['c+1@d.example', 'e@f.example'],
    dsn: { notify: ['failure', 'delay'], ret: 'hdrs', envid: 'Q1=2' } as DsnOptions,
  };

  it('puts RET/ENVID on MAIL and NOTIFY/ORCPT on every RCPT when the server offers DSN', () => {
    const lines = envelopeLines(envelope, withDsn, { size: 10, eightBit: false });
    expect(lines.mail).toBe('MAIL FROM:<a@b.example> RET=HDRS ENVID=Q1+3D2');
    expect(lines.rcpts).toEqual([
      'RCPT TO:<c+1@d.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;c+2B1@d.example',
      'RCPT TO:<e@f.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;e@f.example',
    ]);
    expect(lines.notes).toEqual([]);
  });

  it('sends ORCPT alone when only RET is asked for, with the A-label of the domain', () => {
    const lines = envelopeLines(
      { from: 'a@b.example', to: ['x@bücher.example'], dsn: { ret: 'full' } },
      withDsn,
      body,
    );
    expect(lines.rcpts).toEqual(['RCPT TO:<x@xn--bcher-kva.example> ORCPT=rfc822;x@xn--bcher-kva.example']);
  });

  it('leaves the parameters out and says so when the server does not offer DSN', () => {
    const lines = envelopeLines(envelope, withoutDsn, body);
    expect(lines.mail).toBe('MAIL FROM:<a@b.example>');
    expect(lines.rcpts).toEqual(['RCPT TO:<c+1@d.example>', 'RCPT TO:<e@f.example>']);
    expect(lines.notes).toEqual([DSN_NOT_OFFERED]);
  });

  it('no DSN asked: no parameters and no note', () => {
    const lines = envelopeLines({ from: 'a@b.example', to: ['c@d.example'] }, withDsn, body);
    expect(lines.rcpts).toEqual(['RCPT TO:<c@d.example>']);
    expect(lines.notes).toEqual([]);
  });

  it('adds REQUIRETLS on MAIL over verified TLS to a server offering it', () => {
    const lines = envelopeLines({ ...envelope, requireTls: true }, withDsn, body, verifiedTls);
    expect(lines.mail).toBe('MAIL FROM:<a@b.example> RET=HDRS ENVID=Q1+3D2 REQUIRETLS');
    expect(envelopeLines({ from: 'a@b.example', to: ['c@d.example'] }, withDsn, body, verifiedTls).mail).toBe(
      'MAIL FROM:<a@b.example>',
    );
  });

  it.each([
    ['over plain text', withDsn, { tls: false, verified: true }, 'the connection is not TLS-secured'],
    [
      'without a verified certificate',
      withDsn,
      { tls: true, verified: false },
      'certificate is not verified',
    ],
    ['to a server not offering it', withoutDsn, verifiedTls, 'the server does not offer REQUIRETLS'],
  ])('refuses REQUIRETLS %s, before MAIL', (_, extensions, link, reason) => {
    const call = () =>
      envelopeLines({ from: 'a@b.example', to: ['c@d.example'], requireTls: true }, extensions, body, link);
    expect(call).toThrow(
      expect.objectContaining({ code: 'SMTP_REQUIRETLS_UNSUPPORTED', stage: 'mail', transient: false }),
    );
    expect(call).toThrow(reason);
  });

  it('reads REQUIRETLS from EHLO', () => {
    expect(ehlo('REQUIRETLS').requireTls).toBe(true);
    expect(ehlo('DSN').requireTls).toBe(false);
  });
});
