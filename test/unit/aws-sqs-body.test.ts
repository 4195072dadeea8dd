// toSqsBody: the JSON text of a queue message uses only the characters SQS accepts and parses back to the
// very same message.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { type QueueMessage, toSqsBody } from '../../lib/delivery/queue-message.ts';

// SQS's allowed set, written out code point by code point (not the implementation's regular expression).
function isSqsCharacter(codePoint: number): boolean {
  return (
    codePoint === 0x9 ||
    codePoint === 0xa ||
    codePoint === 0xd ||
    (codePoint >= 0x20 && codePoint <= 0xd7ff) ||
    (codePoint >= 0xe000 && codePoint <= 0xfffd) ||
    (codePoint >= 0x10000 && codePoint <= 0x10ffff)
  );
}

/** Code points of the text as SQS reads it: a lone surrogate counts as itself (and is refused). */
function refusedCharacters(text: string): number[] {
  return [...text].map((char) => char.codePointAt(0)!).filter((codePoint) => !isSqsCharacter(codePoint));
}

const id = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
const at = '2026-11-28T10:00:00.000Z';
/** The initial status record travels with the request; its strings (a subject, tags) are escaped the same way. */
const record = (subject = 'hi'): StatusRecord => ({
  id,
  state: 'queued',
  createdAt: at,
  updatedAt: at,
  messageId: `<${id}@smtpq.test>`,
  subject,
  from: 'a@example.com',
  recipients: [{ address: 'b@example.org', kind: 'to', state: 'queued', updatedAt: at }],
  attempts: 0,
  transcripts: [],
});
const inline = (request: unknown, subject?: string): QueueMessage => ({
  v: 1,
  id,
  record: record(subject),
  request,
});

// Any code point, lone surrogates included, with the troublesome ones made frequent.
const anyCharacter = fc.oneof(
  fc.integer({ min: 0, max: 0x10ffff }).map((codePoint) => String.fromCodePoint(codePoint)),
  fc.constantFrom('\uFFFE', '\uFFFF', '\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\u0000', '\u001F', '\\', '"'),
);
const anyText = fc.array(anyCharacter, { maxLength: 40 }).map((chars) => chars.join(''));

describe('toSqsBody', () => {
  it('escapes U+FFFE, U+FFFF and lone surrogates, and the body parses to the same request', () => {
    const request = {
      subject: 'a\uFFFEb\uFFFFc',
      text: `high \uD800 low \uDC00 reversed \uDC00\uD800`,
      headers: { 'X-\uFFFF': 'v' },
    };

    const body = toSqsBody(inline(request));

    expect(refusedCharacters(body)).toEqual([]);
    expect(body).toContain('a\\ufffeb\\uffffc');
    expect(body).toContain('high \\ud800 low \\udc00 reversed \\udc00\\ud800');
    expect(JSON.parse(body)).toEqual(inline(request));
  });

  it("escapes the initial record's strings too: a subject with U+FFFF parses back intact", () => {
    const message = inline({ text: 'x' }, 'sale \uFFFF ends \uD800 soon');

    const body = toSqsBody(message);

    expect(refusedCharacters(body)).toEqual([]);
    expect(JSON.parse(body)).toEqual(message);
  });

  it('leaves allowed characters as they are, astral ones and U+FFFD included', () => {
    const request = { text: 'tab\there ü € \uFFFD \u{1F600} \uE000 \u007F\u0085' };

    expect(toSqsBody(inline(request))).toBe(JSON.stringify(inline(request)));
  });

  it('gives SQS-safe JSON of the same value for any strings, keys included', () => {
    fc.assert(
      fc.property(
        fc.dictionary(anyText, fc.oneof(anyText, fc.array(anyText, { maxLength: 3 }))),
        (request) => {
          const body = toSqsBody(inline(request));

          expect(refusedCharacters(body)).toEqual([]);
          expect(JSON.parse(body)).toEqual(inline(request));
        },
      ),
      { numRuns: 300 },
    );
  });
});
