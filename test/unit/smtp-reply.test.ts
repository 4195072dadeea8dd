import { describe, expect, it } from 'vitest';
import { MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser, replyLines } from '../../lib/smtp/index.ts';
import type { Reply } from '../../lib/smtp/types.ts';

const parseAll = (...chunks: Array<string | Buffer>): Reply[] => {
  const parser = new ReplyParser();
  return chunks.flatMap((chunk) => parser.push(Buffer.from(chunk)));
};

const EHLO =
  '250-mail.example.org greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 ENHANCEDSTATUSCODES\r\n';
const STREAM = `220 mail.example.org ESMTP\r\n${EHLO}550 5.1.1 <nobody@example.org>: no such user\r\n250 2.0.0 Ok\r\n`;
const EXPECTED: Reply[] = [
  { code: 220, lines: ['mail.example.org ESMTP'] },
  { code: 250, lines: ['mail.example.org greets you', 'PIPELINING', 'SIZE 10240000', 'ENHANCEDSTATUSCODES'] },
  { code: 550, enhanced: '5.1.1', lines: ['5.1.1 <nobody@example.org>: no such user'] },
  { code: 250, enhanced: '2.0.0', lines: ['2.0.0 Ok'] },
];

describe('ReplyParser', () => {
  it('parses several replies packed in one chunk', () => {
    expect(parseAll(STREAM)).toEqual(EXPECTED);
  });

  it('gives the same replies whatever byte offset the stream is split at', () => {
    const bytes = Buffer.from(STREAM);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(parseAll(bytes.subarray(0, cut), bytes.subarray(cut))).toEqual(EXPECTED);
    }
  });

  it('gives the same replies when fed one byte at a time', () => {
    const bytes = Buffer.from(STREAM);
    const parser = new ReplyParser();
    const replies: Reply[] = [];
    for (let i = 0; i < bytes.length; i++) replies.push(...parser.push(bytes.subarray(i, i + 1)));
    expect(replies).toEqual(EXPECTED);
    expect(parser.buffered).toBe(0);
  });

  it('keeps a UTF-8 character split across chunks intact', () => {
    const bytes = Buffer.from('250 2.0.0 Ok für dich\r\n');
    const cut = bytes.indexOf(0xc3) + 1;
    expect(parseAll(bytes.subarray(0, cut), bytes.subarray(cut))).toEqual([
      { code: 250, enhanced: '2.0.0', lines: ['2.0.0 Ok für dich'] },
    ]);
  });

  it('reports what it holds of an incomplete reply', () => {
    const parser = new ReplyParser();
    expect(parser.push(Buffer.from('250-first\r\n250 sec'))).toEqual([]);
    expect(parser.buffered).toBeGreaterThan(0);
    expect(parser.push(Buffer.from('ond\r\n'))).toEqual([{ code: 250, lines: ['first', 'second'] }]);
    expect(parser.buffered).toBe(0);
  });

  it('accepts a code without text, and a bare LF line ending', () => {
    expect(parseAll('250\r\n354\n')).toEqual([
      { code: 250, lines: [''] },
      { code: 354, lines: [''] },
    ]);
  });

  it('takes an enhanced code only when its class matches the reply code', () => {
    expect(parseAll('550 2.1.5 odd\r\n')).toEqual([{ code: 550, lines: ['2.1.5 odd'] }]);
    expect(parseAll('452 4.5.3 Too many recipients\r\n')[0]?.enhanced).toBe('4.5.3');
    expect(parseAll('250 2.0.0\r\n')[0]?.enhanced).toBe('2.0.0');
    expect(parseAll('250 2.0.0x\r\n')[0]?.enhanced).toBeUndefined();
  });

  it.each([
    ['letters for a code', 'abc hello\r\n'],
    ['a code out of range', '650 nope\r\n'],
    ['a 1yz code', '150 nope\r\n'],
    ['a two-digit code', '25 hello\r\n'],
    ['a wrong separator', '250_hello\r\n'],
    ['an empty line', '\r\n'],
    ['a multi-line reply that changes its code', '250-one\r\n251 two\r\n'],
  ])('throws SMTP_PROTOCOL for %s', (_what, input) => {
    const parser = new ReplyParser();
    expect(() => parser.push(Buffer.from(input), 'mail')).toThrow(
      expect.objectContaining({ code: 'SMTP_PROTOCOL', stage: 'mail' }),
    );
    // A parser that saw garbage stays failed: nothing after it is trusted.
    expect(() => parser.push(Buffer.from('250 ok\r\n'))).toThrow(
      expect.objectContaining({ code: 'SMTP_PROTOCOL' }),
    );
  });

  it('throws instead of buffering an endless line, even without a line ending', () => {
    const parser = new ReplyParser();
    const chunk = Buffer.alloc(1024, 'a');
    expect(() => {
      for (let i = 0; i < 10; i++) parser.push(chunk);
    }).toThrow(expect.objectContaining({ code: 'SMTP_PROTOCOL' }));
    expect(() => parseAll(`250 ${'x'.repeat(MAX_REPLY_LINE)}\r\n`)).toThrow(
      expect.objectContaining({ code: 'SMTP_PROTOCOL' }),
    );
  });

  it('throws for a multi-line reply that never ends', () => {
    expect(() => parseAll('250-x\r\n'.repeat(MAX_REPLY_LINES + 1))).toThrow(
      expect.objectContaining({ code: 'SMTP_PROTOCOL' }),
    );
  });

  it('renders a reply back to its wire lines for transcripts', () => {
    expect(replyLines(EXPECTED[1]!)).toEqual([
      '250-mail.example.org greets you',
      '250-PIPELINING',
      '250-SIZE 10240000',
      '250 ENHANCEDSTATUSCODES',
    ]);
  });
});
