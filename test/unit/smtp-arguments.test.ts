import { describe, expect, it } from 'vitest';
import { envelopeLines } from '../../lib/smtp/envelope.ts';
import { noExtensions, parseExtensions, resolveOptions } from '../../lib/smtp/index.ts';
import { ehloName } from '../../lib/smtp/options.ts';

const full = parseExtensions({ code: 250, lines: ['mx', 'SIZE 1000', '8BITMIME', 'SMTPUTF8', 'PIPELINING'] });
const invalid = (stage: string) => expect.objectContaining({ code: 'SMTP_INVALID_ARGUMENT', stage });

describe('envelope checks', () => {
  it.each([
    'a@b.example\r\nRCPT TO:<evil@x.example>',
    'a@b.example\nDATA',
    'a@b.example\r',
    'a\0@b.example',
    'a@b.example> SIZE=1',
    '<a@b.example',
    'a@b\x7f.example',
  ])('rejects %j as an address before anything is sent', (address) => {
    expect(() => envelopeLines({ from: address, to: ['x@y.example'] }, full, { eightBit: false })).toThrow(
      invalid('mail'),
    );
    expect(() =>
      envelopeLines({ from: 'x@y.example', to: ['ok@y.example', address] }, full, { eightBit: false }),
    ).toThrow(invalid('rcpt'));
  });

  it('needs at least one recipient; allows the null reverse-path', () => {
    expect(() => envelopeLines({ from: 'a@b.example', to: [] }, full, { eightBit: false })).toThrow(
      invalid('rcpt'),
    );
    expect(envelopeLines({ from: '', to: ['x@y.example'] }, full, { eightBit: false }).mail).toBe(
      'MAIL FROM:<>',
    );
  });

  it('adds SIZE=, BODY=8BITMIME and SMTPUTF8 when needed and offered', () => {
    const lines = envelopeLines({ from: 'a@b.example', to: ['jörg@y.example'], eightBit: true }, full, {
      size: 900,
      eightBit: false,
    });
    expect(lines.mail).toBe('MAIL FROM:<a@b.example> SIZE=900 BODY=8BITMIME SMTPUTF8');
    expect(lines.rcpts).toEqual(['RCPT TO:<jörg@y.example>']);
    expect(
      envelopeLines({ from: 'a@b.example', to: ['c@d.example'] }, noExtensions(), { size: 5, eightBit: true })
        .mail,
    ).toBe('MAIL FROM:<a@b.example>');
  });

  it('sends an international domain as its A-label, which needs no SMTPUTF8', () => {
    const none = noExtensions();
    const lines = envelopeLines({ from: 'a@bücher.example', to: ['b@例え.jp'] }, none, { eightBit: false });
    expect(lines.mail).toBe('MAIL FROM:<a@xn--bcher-kva.example>');
    expect(lines.rcpts).toEqual(['RCPT TO:<b@xn--r8jz45g.jp>']);
    expect(lines.recipients).toEqual(['b@例え.jp']); // outcomes keep the caller's spelling
  });

  it('fails with typed errors when the server lacks what the message needs', () => {
    const none = noExtensions();
    expect(() =>
      envelopeLines({ from: 'ä@b.example', to: ['c@d.example'] }, none, { eightBit: false }),
    ).toThrow(expect.objectContaining({ code: 'SMTP_SMTPUTF8_UNSUPPORTED' }));
    expect(() =>
      envelopeLines({ from: 'a@b.example', to: ['c@d.example'], eightBit: true }, none, { eightBit: false }),
    ).toThrow(expect.objectContaining({ code: 'SMTP_8BIT_UNSUPPORTED' }));
    expect(() =>
      envelopeLines({ from: 'a@b.example', to: ['c@d.example'] }, full, { size: 1001, eightBit: false }),
    ).toThrow(expect.objectContaining({ code: 'SMTP_SIZE', transient: false }));
  });
});

describe('options', () => {
  it('fills defaults: starttls on 587 with requireTLS, verified certificates, pipelining and chunking', () => {
    expect(resolveOptions({ host: 'mx.example.org' })).toMatchObject({
      port: 587,
      tls: 'starttls',
      requireTLS: true,
      rejectUnauthorized: true,
      pipelining: true,
      chunking: true,
      timeouts: { connect: 10_000, greeting: 10_000, command: 30_000, data: 60_000, dataEnd: 60_000 },
    });
    expect(resolveOptions({ host: 'mx', tls: 'implicit' })).toMatchObject({ port: 465, requireTLS: false });
    expect(resolveOptions({ host: 'mx', tls: 'none' })).toMatchObject({ port: 25, requireTLS: false });
  });

  it.each([
    [{ host: '' }, 'connect'],
    [{ host: 'mx\r\n' }, 'connect'],
    [{ host: 'mx', port: 0 }, 'connect'],
    [{ host: 'mx', port: 1.5 }, 'connect'],
    [{ host: 'mx', tls: 'ssl' }, 'connect'],
    [{ host: 'mx', tls: 'none', requireTLS: true }, 'connect'],
    [{ host: 'mx', name: 'me\r\nMAIL FROM:<x>' }, 'ehlo'],
    [{ host: 'mx', name: 'two words' }, 'connect'],
    [{ host: 'mx', timeouts: { command: -1 } }, 'connect'],
    [{ host: 'mx', timeouts: { commnd: 5 } }, 'connect'],
    [{ host: 'mx', auth: { user: 'u\r\n', pass: 'p' } }, 'auth'],
    [{ host: 'mx', auth: { user: 'u', pass: 'p\0' } }, 'auth'],
    [{ host: 'mx', authMethod: 'CRAM-MD5' }, 'connect'],
  ])('rejects %j with SMTP_INVALID_ARGUMENT', (options, stage) => {
    expect(() => resolveOptions(options as never)).toThrow(invalid(stage));
  });
});

describe('EHLO name', () => {
  it.each([
    ['169.254.10.1', '[169.254.10.1]'],
    ['2001:db8::1', '[IPv6:2001:db8::1]'],
    ['::ffff:10.0.0.7', '[10.0.0.7]'],
    ['ip-10-0-0-1.ec2.internal', 'ip-10-0-0-1.ec2.internal'],
    ['mail.example.com', 'mail.example.com'],
  ])('a host %j goes on the EHLO line as %j (RFC 5321 §4.1.3)', (host, expected) => {
    expect(ehloName(host)).toBe(expected);
  });

  it.each(['bad_host', '', '-dash.example'])('a host %j is no EHLO name (undefined)', (host) => {
    expect(ehloName(host)).toBeUndefined();
  });

  it('a bare IP given as options.name becomes its address literal; a literal or domain is kept', () => {
    expect(resolveOptions({ host: 'mx', name: '192.0.2.1' }).name).toBe('[192.0.2.1]');
    expect(resolveOptions({ host: 'mx', name: '2001:db8::2' }).name).toBe('[IPv6:2001:db8::2]');
    expect(resolveOptions({ host: 'mx', name: '[192.0.2.1]' }).name).toBe('[192.0.2.1]');
    expect(resolveOptions({ host: 'mx', name: 'client.example' }).name).toBe('client.example');
  });
});
