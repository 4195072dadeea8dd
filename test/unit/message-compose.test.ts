import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { afterAll, describe, expect, it } from 'vitest';
import { type ComposeInput, composeMessage, fromSendRequest } from '../../lib/message/compose.ts';
import { MessageError } from '../../lib/message/errors.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';

const base: ComposeInput = { from: 'Sender <sender@example.com>', to: 'rcpt@example.org', text: 'Hello' };

async function compose(input: ComposeInput): Promise<{ raw: Buffer; mail: ParsedMail }> {
  const raw = await buffer(composeMessage(input).createStream());
  return { raw, mail: await simpleParser(raw, { skipImageLinks: true }) };
}

/** The header block, unfolded is not needed: tests look for whole header lines. */
function headerBlock(raw: Buffer): string {
  const text = raw.toString('utf8');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

const addresses = (field: AddressObject | AddressObject[] | undefined) =>
  [field ?? []].flat().flatMap((object) => object.value.map((entry) => entry.address));

function longestLineOctets(raw: Buffer): number {
  let longest = 0;
  let start = 0;
  for (let i = raw.indexOf(0x0a); i !== -1; i = raw.indexOf(0x0a, start)) {
    longest = Math.max(longest, i - start - 1); // without the CR
    start = i + 1;
  }
  return Math.max(longest, raw.length - start);
}

/** A bare CR or LF anywhere: every line ending must be CRLF. */
const hasBareLineBreak = (raw: Buffer): boolean => /\r(?!\n)|(?<!\r)\n/.test(raw.toString('latin1'));

function compositionIssues(input: ComposeInput): string[] {
  try {
    composeMessage(input);
  } catch (error) {
    if (error instanceof MessageError && error.code === 'MESSAGE_INVALID')
      return error.issues.map((i) => i.path);
    throw error;
  }
  return [];
}

/** The longest prefix of whole code points within the subject limit (998 UTF-16 units). */
function upTo998Units(value: string): string {
  let out = '';
  for (const char of value) {
    if (out.length + char.length > 998) break;
    out += char;
  }
  return out;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('composeMessage: headers', () => {
  it('writes From, To, Cc, Reply-To, Subject, Date, Message-ID and custom headers that parse back', async () => {
    const date = new Date('2026-11-28T10:00:00Z');
    const { raw, mail } = await compose({
      ...base,
      from: 'Jürgen Müller <jurgen@example.com>',
      to: ['"Doe, John" <john@example.org>', 'ann@example.org'],
      cc: { name: 'Çelik', address: 'celik@example.net' },
      replyTo: 'Support <support@example.com>',
      subject: 'Grüße — ✓ 日本語 subject',
      headers: {
        'X-Campaign': 'spring',
        'List-Id': '<news.example.com>',
        'X-Note': 'naïve',
      },
      messageId: 'fixed-id@example.com',
      date,
    });
    expect(mail.from?.value).toEqual([{ name: 'Jürgen Müller', address: 'jurgen@example.com' }]);
    expect(mail.to).toMatchObject({
      value: [
        { name: 'Doe, John', address: 'john@example.org' },
        { name: '', address: 'ann@example.org' },
      ],
    });
    expect(mail.cc).toMatchObject({ value: [{ name: 'Çelik', address: 'celik@example.net' }] });
    expect(mail.replyTo).toMatchObject({ value: [{ name: 'Support', address: 'support@example.com' }] });
    expect(mail.subject).toBe('Grüße — ✓ 日本語 subject');
    expect(mail.messageId).toBe('<fixed-id@example.com>');
    expect(mail.date?.toISOString()).toBe(date.toISOString());
    expect(mail.headers.get('x-campaign')).toBe('spring');
    expect(mail.headers.get('x-note')).toBe('=?UTF-8?Q?na=C3=AFve?='); // RFC 2047; mailparser leaves X- headers encoded
    const headers = headerBlock(raw);
    expect(headers).toMatch(/^List-ID: <news\.example\.com>$/m); // MailComposer writes its canonical case
    // RFC 2047 on the wire: no raw non-ASCII in any header of an ASCII-addressed message.
    expect(headers).toMatch(/^Subject: =\?UTF-8\?[QB]\?/m);
    expect(headers).toMatch(/^From: =\?UTF-8\?[QB]\?.+\?= <jurgen@example\.com>$/m);
    expect(raw.every((octet) => octet < 0x80)).toBe(true);
    expect(headers).toMatch(/^MIME-Version: 1\.0$/m);
  });

  it('always has a Date and a Message-ID, stable across createStream calls', async () => {
    const composed = composeMessage({ ...base, messageIdDomain: 'mail.example.com' });
    expect(composed.messageId).toMatch(/^<[0-9a-f-]{36}@mail\.example\.com>$/);
    const [first, second] = await Promise.all([
      buffer(composed.createStream()),
      buffer(composed.createStream()),
    ]);
    const mail = await simpleParser(first);
    expect(mail.messageId).toBe(composed.messageId);
    expect(mail.date?.getTime()).toBe(Math.floor(composed.date.getTime() / 1000) * 1000);
    expect(second.equals(first)).toBe(true);
  });

  it('takes the generated Message-ID domain from the From address by default', () => {
    expect(composeMessage({ ...base, from: 'a@Sender.Example' }).messageId).toMatch(/@sender\.example>$/);
  });

  it('never writes Bcc, but puts every recipient in the envelope once', async () => {
    const composed = composeMessage({
      ...base,
      to: ['a@example.org', 'b@example.org'],
      cc: 'c@example.org, a@example.org',
      bcc: ['secret@example.net', 'b@example.org'],
    });
    expect(composed.envelope).toEqual({
      from: 'sender@example.com',
      to: ['a@example.org', 'b@example.org', 'c@example.org', 'secret@example.net'],
      smtpUtf8: false,
      eightBit: false,
    });
    const raw = await buffer(composed.createStream());
    expect(raw.toString('utf8')).not.toMatch(/secret/);
    expect(headerBlock(raw)).not.toMatch(/^bcc:/im);
    const mail = await simpleParser(raw);
    expect(addresses(mail.to)).toEqual(['a@example.org', 'b@example.org']);
    expect(addresses(mail.cc)).toEqual(['c@example.org', 'a@example.org']);
  });

  it('accepts a Bcc-only message (no To header at all)', async () => {
    const composed = composeMessage({ from: 'a@example.com', bcc: 'hidden@example.org', text: 'x' });
    expect(composed.envelope.to).toEqual(['hidden@example.org']);
    expect(headerBlock(await buffer(composed.createStream()))).not.toMatch(/^(to|bcc):/im);
  });
});

describe('composeMessage: internationalised addresses', () => {
  it('punycodes an IDN domain: no SMTPUTF8, a 7-bit message', async () => {
    const composed = composeMessage({ ...base, to: 'Jüri <juri@jõgeva.ee>' });
    expect(composed.envelope).toMatchObject({
      to: ['juri@xn--jgeva-dua.ee'],
      smtpUtf8: false,
      eightBit: false,
    });
    const raw = await buffer(composed.createStream());
    expect(raw.every((octet) => octet < 0x80)).toBe(true);
    expect(headerBlock(raw)).toMatch(/<juri@xn--jgeva-dua\.ee>/);
  });

  it('flags a UTF-8 local part (recipient, sender or Reply-To) as needing SMTPUTF8', async () => {
    for (const input of [
      { ...base, to: 'josé@example.org' },
      { ...base, from: '用户@例子.广告' },
      { ...base, replyTo: 'josé@example.org' },
    ]) {
      expect(composeMessage(input).envelope).toMatchObject({ smtpUtf8: true, eightBit: true });
    }
    const { mail } = await compose({ ...base, to: 'José <josé@example.org>' });
    expect(addresses(mail.to)).toEqual(['josé@example.org']);
  });
});

describe('composeMessage: bodies and attachments', () => {
  it('makes text + html a multipart/alternative', async () => {
    const { raw, mail } = await compose({
      ...base,
      text: 'Plain ünïcode',
      html: '<p>Rich <b>ünïcode</b></p>',
    });
    expect(headerBlock(raw)).toMatch(/^Content-Type: multipart\/alternative;/m);
    expect(mail.text?.trimEnd()).toBe('Plain ünïcode');
    expect(String(mail.html).trimEnd()).toBe('<p>Rich <b>ünïcode</b></p>');
  });

  it('sends an html-only message', async () => {
    const { raw, mail } = await compose({ from: 'a@example.com', to: 'b@example.org', html: '<p>only</p>' });
    expect(headerBlock(raw)).toMatch(/^Content-Type: text\/html/m);
    expect(String(mail.html).trimEnd()).toBe('<p>only</p>');
  });

  it('keeps every attachment byte-equal: Buffer, Uint8Array view, stream factory, path, one-shot stream', async () => {
    const binary = randomBytes(64 * 1024);
    const allOctets = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const backing = new Uint8Array(32).fill(9);
    backing.set([1, 2, 3, 4], 10);
    const dir = mkdtempSync(join(tmpdir(), 'smtpq-message-'));
    tempDirs.push(dir);
    const path = join(dir, 'report.pdf');
    const pdf = randomBytes(5000);
    writeFileSync(path, pdf);
    const streamed = randomBytes(70_000);
    const oneShot = randomBytes(3000);
    const { raw, mail } = await compose({
      ...base,
      attachments: [
        { filename: 'random.bin', contentType: 'application/octet-stream', content: binary },
        { filename: 'octets.bin', content: allOctets },
        { filename: 'view.bin', content: backing.subarray(10, 14) },
        {
          filename: 'stream.bin',
          content: () => Readable.from([streamed.subarray(0, 1000), streamed.subarray(1000)]),
        },
        { filename: 'report.pdf', content: { path } },
        { filename: 'once.bin', content: Readable.from([oneShot]) },
        { filename: 'Ünïcödé naïve.txt', contentType: 'text/plain', content: Buffer.from('é\n') },
      ],
    });
    expect(mail.attachments.map((a) => a.filename)).toEqual([
      'random.bin',
      'octets.bin',
      'view.bin',
      'stream.bin',
      'report.pdf',
      'once.bin',
      'Ünïcödé naïve.txt',
    ]);
    const contents = mail.attachments.map((a) => a.content);
    expect(contents[0]!.equals(binary)).toBe(true);
    expect(contents[1]!.equals(allOctets)).toBe(true);
    expect(contents[2]!.equals(Buffer.from([1, 2, 3, 4]))).toBe(true);
    expect(contents[3]!.equals(streamed)).toBe(true);
    expect(contents[4]!.equals(pdf)).toBe(true);
    expect(contents[5]!.equals(oneShot)).toBe(true);
    expect(contents[6]!.toString('utf8')).toBe('é\n');
    expect(mail.attachments[4]!.contentType).toBe('application/pdf');
    expect(raw.toString('latin1')).toMatch(/Content-Transfer-Encoding: base64/);
    expect(raw.every((octet) => octet < 0x80)).toBe(true);
  });

  it('puts a cid attachment inline, in a multipart/related beside the html', async () => {
    const logo = randomBytes(300);
    const { raw, mail } = await compose({
      ...base,
      html: '<p><img src="cid:logo@example"></p>',
      attachments: [
        { filename: 'logo.png', contentType: 'image/png', content: logo, cid: 'logo@example' },
        { filename: 'terms.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF') },
      ],
    });
    expect(raw.toString('latin1')).toMatch(/Content-Type: multipart\/related;/);
    const inline = mail.attachments.find((a) => a.filename === 'logo.png')!;
    expect(inline).toMatchObject({ cid: 'logo@example', contentDisposition: 'inline', related: true });
    expect(inline.content.equals(logo)).toBe(true);
    const attached = mail.attachments.find((a) => a.filename === 'terms.pdf')!;
    expect(attached.contentDisposition).toBe('attachment');
    expect(attached.related ?? false).toBe(false);
  });
});

describe('composeMessage: createStream builds the message on its first read', () => {
  // Sends queued behind others on one connection must hold no composed bytes and no open files.
  it('opens no attachment source until the stream is read, and then the same bytes come out', async () => {
    let opened = 0;
    const data = randomBytes(3000);
    const composed = composeMessage({
      ...base,
      attachments: [
        {
          filename: 'a.bin',
          content: () => {
            opened++;
            return Readable.from([data]);
          },
        },
      ],
    });
    const stream = composed.createStream();
    expect(opened).toBe(0);
    const raw = await buffer(stream);
    expect(opened).toBe(1);
    const mail = await simpleParser(raw);
    expect(mail.attachments[0]!.content.equals(data)).toBe(true);
  });

  it('destroyed unread: no source is ever opened, and a one-shot stream given to it is released', async () => {
    let opened = 0;
    const oneShot = Readable.from(['x']);
    const composed = composeMessage({
      ...base,
      attachments: [
        {
          filename: 'a.bin',
          content: () => {
            opened++;
            return Readable.from(['y']);
          },
        },
        { filename: 'b.bin', content: oneShot },
      ],
    });
    composed.createStream().destroy();
    expect(opened).toBe(0);
    expect(oneShot.destroyed).toBe(true);
  });
});

describe('composeMessage: createStream again (retry)', () => {
  it('yields identical bytes for bytes, stream-factory and path sources', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smtpq-message-'));
    tempDirs.push(dir);
    const path = join(dir, 'a.bin');
    writeFileSync(path, randomBytes(2000));
    const data = randomBytes(4000);
    const composed = composeMessage({
      ...base,
      html: '<img src="cid:i@x">',
      attachments: [
        { filename: 'a.bin', content: { path } },
        { filename: 'b.bin', content: () => Readable.from([data]) },
        { filename: 'i.png', contentType: 'image/png', content: randomBytes(100), cid: 'i@x' },
      ],
    });
    const first = await buffer(composed.createStream());
    const second = await buffer(composed.createStream());
    expect(second.equals(first)).toBe(true);
  });

  it('refuses to read a one-shot stream twice, with a typed error', async () => {
    const composed = composeMessage({
      ...base,
      attachments: [{ filename: 'a', content: Readable.from(['x']) }],
    });
    await buffer(composed.createStream());
    expect(() => composed.createStream()).toThrow(
      expect.objectContaining({ name: 'MessageError', code: 'MESSAGE_SOURCE_CONSUMED' }),
    );
  });
});

describe('composeMessage: line length', () => {
  it('keeps an unbreakable 998-character subject, a 900-character header and a 255-character filename under 998 octets', async () => {
    const subject = 's'.repeat(998);
    const { raw, mail } = await compose({
      ...base,
      subject,
      headers: { 'X-Long': 'h'.repeat(900) },
      attachments: [{ filename: `${'f'.repeat(251)}.bin`, content: Buffer.from('x') }],
    });
    expect(longestLineOctets(raw)).toBeLessThanOrEqual(998);
    expect(mail.subject).toBe(subject);
    expect(mail.headers.get('x-long')).toBe('h'.repeat(900));
    expect(mail.attachments[0]!.filename).toBe(`${'f'.repeat(251)}.bin`);
  });

  it('property: any subject and text give CRLF lines of at most 998 octets, and round-trip', async () => {
    const subjectChar = fc.oneof(
      fc.constantFrom('a', 'Z', ' ', '=', '?', '_', '"', '.', 'é', '✓', '日', '😀', '\t'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    );
    const textChar = fc.oneof(
      fc.constantFrom('a', ' ', '.', '\n', '\r', '\r\n', '=', 'é', '😀', '\t'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    );
    const longRun = (char: fc.Arbitrary<string>) =>
      fc.tuple(char, fc.integer({ min: 0, max: 1200 })).map(([c, n]) => c.repeat(n));
    const subject = fc
      .array(fc.oneof(subjectChar, longRun(fc.constantFrom('x', 'é'))), { maxLength: 40 })
      .map((parts) => upTo998Units(parts.join('')))
      .filter((s) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(s));
    const text = fc
      .array(fc.oneof(textChar, longRun(fc.constantFrom('y', '.', 'ü'))), { maxLength: 40 })
      .map((p) => p.join(''));
    await fc.assert(
      fc.asyncProperty(subject, text, async (subjectValue, textValue) => {
        const { raw, mail } = await compose({ ...base, subject: subjectValue, text: textValue });
        expect(longestLineOctets(raw)).toBeLessThanOrEqual(998);
        expect(hasBareLineBreak(raw)).toBe(false);
        expect(raw.every((octet) => octet < 0x80)).toBe(true);
        // mailparser trims the subject and folds whitespace runs to what the header carried.
        expect((mail.subject ?? '').replace(/\s+/g, ' ').trim()).toBe(
          subjectValue.replace(/\s+/g, ' ').trim(),
        );
        expect((mail.text ?? '').replace(/\r\n?/g, '\n').trimEnd()).toBe(
          textValue.replace(/\r\n?/g, '\n').trimEnd(),
        );
      }),
      { numRuns: 60 },
    );
  });
});

describe('composeMessage: refuses injection through every field', () => {
  const CRLF_BCC = '\r\nBcc: victim@example.net';
  it.each<[string, Partial<ComposeInput>]>([
    ['from', { from: `sender@example.com${CRLF_BCC}` }],
    ['from', { from: { name: `Eve${CRLF_BCC}`, address: 'eve@example.com' } }],
    ['to[1]', { to: ['ok@example.org', 'a@example.org>\r\nRCPT TO:<x@example.net>'] }],
    ['cc', { cc: `c@example.org${CRLF_BCC}` }],
    ['bcc', { bcc: 'b@example.org\nDATA' }],
    ['replyTo', { replyTo: `r@example.org${CRLF_BCC}` }],
    ['subject', { subject: `Hello${CRLF_BCC}` }],
    ['subject', { subject: 'Hello\nX-Evil: 1' }],
    ['headers.X-Evil\r\nBcc', { headers: { 'X-Evil\r\nBcc': 'x' } }],
    ['headers.X-Ok', { headers: { 'X-Ok': `v${CRLF_BCC}` } }],
    ['headers.X-Ok', { headers: { 'X-Ok': 'v\u0000' } }],
    ['headers.Content-Type', { headers: { 'Content-Type': 'text/html' } }],
    ['headers.bcc', { headers: { bcc: 'victim@example.net' } }],
    [
      'attachments[0].filename',
      { attachments: [{ filename: `a.txt${CRLF_BCC}`, content: Buffer.from('x') }] },
    ],
    [
      'attachments[0].contentType',
      { attachments: [{ filename: 'a', contentType: `text/plain${CRLF_BCC}`, content: Buffer.from('x') }] },
    ],
    [
      'attachments[0].cid',
      { attachments: [{ filename: 'a', cid: 'x>\r\nBcc: y', content: Buffer.from('x') }] },
    ],
    ['messageId', { messageId: `<a@b>${CRLF_BCC}` }],
  ])('%s', (path, fields) => {
    expect(compositionIssues({ ...base, ...fields })).toEqual([path]);
  });

  it('refuses content it cannot read, a message without recipients, and too many recipients', () => {
    expect(
      compositionIssues({
        ...base,
        attachments: [{ filename: 'a', content: 'text' as unknown as Uint8Array }],
      }),
    ).toEqual(['attachments[0].content']);
    expect(compositionIssues({ from: 'a@example.com', text: 'x' })).toEqual(['to']);
    const many = Array.from({ length: 51 }, (_, i) => `r${i}@example.org`);
    expect(compositionIssues({ ...base, to: many })).toEqual(['to']);
  });
});

describe('fromSendRequest', () => {
  it('decodes attachments, takes the Date given and generates the Message-ID at messageIdDomain', async () => {
    const validated = validateSendRequest({
      from: 'Sender <sender@example.com>',
      to: 'rcpt@example.org',
      bcc: 'hidden@example.org',
      subject: 'Report',
      text: 'See attached',
      attachments: [{ filename: 'r.bin', contentType: 'application/octet-stream', content: 'AAEC/w==' }],
      headers: { 'X-Campaign': 'c1' },
    });
    if (!validated.ok) throw new Error('fixture must be valid');
    const date = new Date('2026-11-28T10:00:00Z');
    const input = fromSendRequest(validated.value, { messageIdDomain: 'smtpq.example', date });
    const composed = composeMessage(input);
    expect(composed.messageId).toMatch(/^<[0-9a-f-]{36}@smtpq\.example>$/);
    expect(composed.date).toEqual(date);
    expect(composed.envelope.to).toEqual(['rcpt@example.org', 'hidden@example.org']);
    const mail = await simpleParser(await buffer(composed.createStream()));
    expect(mail.attachments[0]!.content.equals(Buffer.from([0, 1, 2, 255]))).toBe(true);
    expect(mail.headers.get('x-campaign')).toBe('c1');
    expect(mail.messageId).toBe(composed.messageId);
  });

  it('prefers the Message-ID and Date stored in the request', () => {
    const validated = validateSendRequest({
      from: 'a@example.com',
      to: 'b@example.org',
      text: 'x',
      messageId: '<stored@example.com>',
      date: '2026-01-02T03:04:05Z',
    });
    if (!validated.ok) throw new Error('fixture must be valid');
    const composed = composeMessage(
      fromSendRequest(validated.value, { messageIdDomain: 'other.example', date: new Date(0) }),
    );
    expect(composed.messageId).toBe('<stored@example.com>');
    expect(composed.date.toISOString()).toBe('2026-01-02T03:04:05.000Z');
  });
});
