import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDataEncoder, DataEncoding, encodeData } from '../../lib/smtp/index.ts';

/** What the message must be after transport: every line ending CRLF, a final CRLF when not empty. */
function normalise(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text.length > 0 && !text.endsWith('\r\n') ? `${text}\r\n` : text, 'latin1');
}

/** The receiving side of DATA (RFC 5321 §4.5.2): strip the terminator, remove one leading dot per line. */
function unstuff(wire: Buffer): Buffer {
  const text = wire.toString('latin1');
  expect(text.endsWith('.\r\n')).toBe(true);
  const data = text.slice(0, -3);
  return Buffer.from(
    data
      .split('\r\n')
      .map((line) => (line.startsWith('.') ? line.slice(1) : line))
      .join('\r\n'),
    'latin1',
  );
}

/** No CR without LF after it, no LF without CR before it. */
function hasBareCrOrLf(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a) return true;
    if (bytes[i] === 0x0a && bytes[i - 1] !== 0x0d) return true;
  }
  return false;
}

function encodeInChunks(
  body: Buffer,
  cuts: number[],
  dotStuff = true,
): { wire: Buffer; encoding: DataEncoding } {
  const encoding = new DataEncoding({ dotStuff });
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let start = 0;
  for (const point of [...points, body.length]) {
    parts.push(Buffer.from(encoding.encode(body.subarray(start, point))));
    start = point;
  }
  parts.push(encoding.finish());
  return { wire: Buffer.concat(parts), encoding };
}

// Bodies made of the characters that matter: CR, LF, dots, long lines, non-ASCII and plain text.
const fragment = fc.oneof(
  fc.constantFrom('\r', '\n', '\r\n', '.', '..', '\r\n.\r\n', '\n.\n', '\r.\r', 'é', '😀', 'a', ' '),
  fc.string({ maxLength: 20 }),
  fc.constantFrom('x'.repeat(1200)),
);
const bodyArb = fc.array(fragment, { maxLength: 40 }).map((parts) => Buffer.from(parts.join(''), 'utf8'));
const cutsArb = fc.array(fc.nat(), { maxLength: 8 });

describe('DATA encoder', () => {
  it('never lets a bare CR or LF out, and un-stuffing gives the body with normalised line endings', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        const { wire, encoding } = encodeInChunks(body, cuts);
        expect(hasBareCrOrLf(wire)).toBe(false);
        const expected = normalise(body);
        expect(unstuff(wire)).toEqual(expected);
        // No line is a lone "." before the end: the terminator is the only one.
        expect(wire.toString('latin1').slice(0, -3).split('\r\n').includes('.')).toBe(false);
        expect(encoding.octets).toBe(expected.length);
        expect(encoding.lines).toBe(expected.toString('latin1').split('\r\n').length - 1);
      }),
      { numRuns: 250 },
    );
  });

  it('produces the same bytes wherever the input is split', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        expect(encodeInChunks(body, cuts).wire).toEqual(encodeInChunks(body, []).wire);
      }),
      { numRuns: 150 },
    );
  });

  it('for BDAT normalises line endings without stuffing or terminator', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        const { wire } = encodeInChunks(body, cuts, false);
        expect(wire).toEqual(normalise(body));
      }),
      { numRuns: 150 },
    );
  });

  it('matches a plain reference implementation for any body and split, clean or not (both code paths)', () => {
    const reference = (body: Buffer, dotStuff: boolean) => {
      const text = normalise(body).toString('latin1');
      if (!dotStuff) return Buffer.from(text, 'latin1');
      return Buffer.from(`${text.replace(/^\./gm, '..')}.\r\n`, 'latin1');
    };
    const line = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('.', '.x', '', 'ü'));
    // Lines joined with CRLF only: chunks of such bodies mostly take the pass-through path.
    const cleanBody = fc
      .array(line, { maxLength: 30 })
      .map((ls) => Buffer.from(ls.map((l) => l.replace(/[\r\n]/g, '')).join('\r\n'), 'utf8'));
    fc.assert(
      fc.property(fc.oneof(cleanBody, bodyArb), cutsArb, fc.boolean(), (body, cuts, dotStuff) => {
        expect(encodeInChunks(body, cuts, dotStuff).wire).toEqual(reference(body, dotStuff));
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['', '.\r\n'],
    ['a', 'a\r\n.\r\n'],
    ['a\nb', 'a\r\nb\r\n.\r\n'],
    ['a\rb\r', 'a\r\nb\r\n.\r\n'],
    ['.\r\n..\n.x', '..\r\n...\r\n..x\r\n.\r\n'],
    ['line\r\n.\r\nafter', 'line\r\n..\r\nafter\r\n.\r\n'],
    ['\r\n\r\n', '\r\n\r\n.\r\n'],
  ])('encodes %j', (input, expected) => {
    expect(encodeData(input).bytes.toString('latin1')).toBe(expected);
  });

  it('handles a CR at the end of one chunk and the LF or a dot at the start of the next', () => {
    const encoding = new DataEncoding();
    const out = [
      encoding.encode(Buffer.from('a\r')),
      encoding.encode(Buffer.from('\nb\r')),
      encoding.encode(Buffer.from('.c\r')),
      encoding.finish(),
    ];
    expect(Buffer.concat(out).toString()).toBe('a\r\nb\r\n..c\r\n.\r\n');
  });

  it('passes a chunk that needs no change through without copying it', () => {
    const chunk = Buffer.from('Subject: x\r\n\r\nhello\r\n');
    expect(new DataEncoding().encode(chunk)).toBe(chunk);
  });

  it('flags 8-bit content', () => {
    expect(encodeData('plain ascii').eightBit).toBe(false);
    expect(encodeData('grüße').eightBit).toBe(true);
  });

  it('works as a Transform over a stream of arbitrary chunks', async () => {
    const source = Readable.from([Buffer.from('.first\n'), 'sec', 'ond\r', '\n.', '\rend']);
    const out = await buffer(source.pipe(createDataEncoder()));
    expect(out.toString()).toBe('..first\r\nsecond\r\n..\r\nend\r\n.\r\n');
  });

  it('encodes a large streamed body chunk by chunk', async () => {
    const chunk = Buffer.from(`${'y'.repeat(75)}\n.${'z'.repeat(50)}\n`);
    let total = 0;
    async function* body() {
      for (let i = 0; i < 20_000; i++) yield chunk;
    }
    const encoder = createDataEncoder();
    Readable.from(body()).pipe(encoder);
    for await (const out of encoder) total += (out as Buffer).length;
    // 2 added CRs and 1 stuffed dot per chunk, plus the terminator.
    expect(total).toBe(20_000 * (chunk.length + 3) + 3);
    expect(encoder.encoding.lines).toBe(40_000);
  });
});
