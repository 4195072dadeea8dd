import { describe, expect, it } from 'vitest';
import { decodedSize, type SendRequest, validateSendRequest } from '../../lib/message/schema.ts';

const minimal = { from: 'Sender <sender@example.com>', to: 'rcpt@example.org', text: 'Hello' };

function issuesOf(input: unknown) {
  const result = validateSendRequest(input);
  if (result.ok) throw new Error(`expected issues, got ${JSON.stringify(result.value)}`);
  return result.issues;
}

function validValue(input: unknown): SendRequest {
  const result = validateSendRequest(input);
  if (!result.ok) throw new Error(`expected a valid request: ${JSON.stringify(result.issues)}`);
  return result.value;
}

describe('validateSendRequest: valid requests', () => {
  it('normalises a minimal request', () => {
    expect(validValue(minimal)).toEqual({
      from: { name: 'Sender', address: 'sender@example.com' },
      to: [{ address: 'rcpt@example.org' }],
      cc: [],
      bcc: [],
      replyTo: [],
      text: 'Hello',
      attachments: [],
      headers: {},
      tags: {},
    });
  });

  it('accepts every field, in every accepted form', () => {
    const value = validValue({
      from: { name: 'Sender', address: 'sender@Example.com' },
      to: ['a@example.org', { address: 'b@example.org' }, '"Doe, J" <j@example.org>, k@example.org'],
      cc: 'c@jõgeva.ee',
      bcc: ['hidden@example.net'],
      replyTo: 'Support <support@example.com>',
      subject: 'Hi ✓',
      html: '<p>Hi</p>',
      attachments: [
        { filename: 'a.pdf', contentType: 'application/pdf', content: 'JVBERg==' },
        {
          filename: 'logo.png',
          contentType: 'image/png; name="logo.png"',
          content: 'iVBO\r\nRw==',
          cid: 'logo@example',
        },
      ],
      headers: { 'List-Id': '<news.example.com>', 'X-Campaign': 'spring' },
      tags: { campaign: 'spring-2026', 'team.id': '42' },
      messageId: 'abc.123@example.com',
      date: '2026-11-28T10:00:00+01:00',
    });
    expect(value.from.address).toBe('sender@example.com');
    expect(value.to.map((m) => m.address)).toEqual([
      'a@example.org',
      'b@example.org',
      'j@example.org',
      'k@example.org',
    ]);
    expect(value.to[2]!.name).toBe('Doe, J');
    expect(value.cc).toEqual([{ address: 'c@xn--jgeva-dua.ee' }]);
    expect(value.attachments[1]!.content).toBe('iVBORw==');
    expect(value.messageId).toBe('<abc.123@example.com>');
  });

  it('needs only one recipient field, any of them', () => {
    expect(validateSendRequest({ from: 'a@example.com', bcc: 'b@example.com', html: '<p>x</p>' }).ok).toBe(
      true,
    );
  });

  it('accepts its own output again unchanged (JSON round trip, as through SQS)', () => {
    const first = validValue({
      ...minimal,
      to: ['Zoë <z@jõgeva.ee>', 'y@example.org'],
      messageId: '<m@x.example>',
    });
    expect(validValue(JSON.parse(JSON.stringify(first)))).toEqual(first);
  });

  it('keeps an address listed twice only where it first appears (one ledger entry per address)', () => {
    const value = validValue({
      ...minimal,
      to: ['a@example.org', 'A <a@Example.ORG>', 'b@example.org'],
      cc: 'b@example.org, c@example.org',
      bcc: ['a@example.org', 'd@example.org'],
    });
    expect(value.to).toEqual([{ address: 'a@example.org' }, { address: 'b@example.org' }]);
    expect(value.cc).toEqual([{ address: 'c@example.org' }]);
    expect(value.bcc).toEqual([{ address: 'd@example.org' }]);
  });

  it('allows exactly 50 recipients and no more', () => {
    const fifty = Array.from({ length: 50 }, (_, i) => `r${i}@example.org`);
    expect(validateSendRequest({ ...minimal, to: fifty }).ok).toBe(true);
    expect(
      issuesOf({ ...minimal, to: fifty.slice(0, 30), bcc: fifty.slice(30), cc: 'one-more@example.org' }),
    ).toEqual([{ path: 'to', message: 'at most 50 recipients in to, cc and bcc together' }]);
  });
});

describe('validateSendRequest: field-level issues', () => {
  it('names the array index of a bad recipient', () => {
    expect(issuesOf({ ...minimal, to: ['ok@example.org', 'nobody', 42] })).toEqual([
      { path: 'to[1]', message: '"nobody" is not an email address' },
      {
        path: 'to[2]',
        message: 'must be an address string ("Name <user@example.com>") or { name, address }',
      },
    ]);
  });

  it('names the field (not [0]) when a recipient field is a single value', () => {
    expect(issuesOf({ ...minimal, cc: 'broken@' })).toEqual([
      { path: 'cc', message: 'address has an empty domain' },
    ]);
  });

  it('requires a sender, a recipient and a body', () => {
    expect(issuesOf({ subject: 'x' })).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: 'from' })]),
    );
    expect(issuesOf({ from: 'a@example.com', text: 'x' })).toEqual([
      { path: 'to', message: 'at least one recipient (to, cc or bcc) is required' },
    ]);
    expect(issuesOf({ from: 'a@example.com', to: 'b@example.com' })).toEqual([
      { path: 'text', message: 'text or html (or both) is required' },
    ]);
  });

  it('rejects a from with several addresses', () => {
    expect(issuesOf({ ...minimal, from: 'a@example.com, b@example.com' })).toEqual([
      { path: 'from', message: 'expected one address, found 2' },
    ]);
  });

  it('reports unknown fields by name, also nested', () => {
    expect(issuesOf({ ...minimal, attachment: [] })).toEqual([
      { path: 'attachment', message: 'unknown field' },
    ]);
    expect(issuesOf({ ...minimal, attachments: [{ filename: 'a', content: '', inline: true }] })).toEqual([
      { path: 'attachments[0].inline', message: 'unknown field' },
    ]);
  });

  it('refuses a "__proto__" key anywhere rather than dropping it silently', () => {
    const input = JSON.parse(
      '{"from":"a@example.com","to":"b@example.org","text":"x","headers":{"__proto__":"v"},"tags":{"__proto__":"t"}}',
    );
    expect(issuesOf(input)).toEqual([
      { path: 'headers.__proto__', message: '"__proto__" is not allowed as a name' },
      { path: 'tags.__proto__', message: '"__proto__" is not allowed as a name' },
    ]);
    expect(
      issuesOf(JSON.parse('{"__proto__":{"x":1},"from":"a@example.com","to":"b@example.org","text":"x"}')),
    ).toContainEqual({ path: '__proto__', message: '"__proto__" is not allowed as a name' });
  });

  it('rejects a request that is not an object', () => {
    for (const input of [null, [], 'text', 42]) {
      expect(issuesOf(input)).toEqual([{ path: '', message: 'the request must be a JSON object' }]);
    }
  });

  it.each([
    ['YWJj', true],
    ['YWI=', true],
    ['YQ==', true],
    ['', true],
    ['YWJ\njYQ==', true],
    ['YWJ', false],
    ['YQ', false],
    ['YWJj!', false],
    ['YW=j', false],
    ['YWJj====', false],
    ['YWJj_-==', false],
  ])('attachment content %j is base64: %s', (content, valid) => {
    const result = validateSendRequest({ ...minimal, attachments: [{ filename: 'f', content }] });
    expect(result.ok).toBe(valid);
    if (!result.ok) expect(result.issues.map((i) => i.path)).toEqual(['attachments[0].content']);
  });

  it('checks attachment filename, content type and cid', () => {
    const issues = issuesOf({
      ...minimal,
      attachments: [
        { filename: 'a\r\nContent-Type: text/html', content: '' },
        { filename: 'b', contentType: 'pdf', content: '' },
        { filename: 'c', contentType: 'text/plain\r\nX-Evil: 1', content: '' },
        { filename: 'd', content: '', cid: '<logo>' },
        { filename: '', content: '' },
      ],
    });
    expect(issues.map((i) => i.path)).toEqual([
      'attachments[0].filename',
      'attachments[1].contentType',
      'attachments[2].contentType',
      'attachments[3].cid',
      'attachments[4].filename',
    ]);
  });

  it.each([
    ['Subject', 'x'],
    ['to', 'x@example.com'],
    ['BCC', 'x@example.com'],
    ['Message-ID', '<a@b>'],
    ['Date', 'now'],
    ['MIME-Version', '1.0'],
    ['Content-Type', 'text/html'],
    ['content-transfer-encoding', '8bit'],
    ['Reply-To', 'x@example.com'],
  ])('refuses the reserved header %s', (name, value) => {
    const issues = issuesOf({ ...minimal, headers: { [name]: value } });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toMatch(/set by smtpq itself/);
  });

  it.each([
    'Received',
    'Return-Path',
    'DKIM-Signature',
    'ARC-Seal',
    'arc-message-signature',
    'ARC-Authentication-Results',
    'Authentication-Results',
    'Resent-From',
    'resent-message-id',
    'List-Unsubscribe',
    'List-Unsubscribe-Post',
  ])('refuses the trace, authentication and unsubscribe header %s, naming it', (name) => {
    const issues = issuesOf({ ...minimal, headers: { [name]: 'x' } });
    expect(issues).toEqual([{ path: `headers.${name}`, message: expect.stringContaining(`"${name}"`) }]);
  });

  it.each([
    ['X-A\r\nBcc', 'x'],
    ['X A', 'x'],
    ['X-A:', 'x'],
    ['', 'x'],
    ['X-Ünï', 'x'],
    [`X-${'a'.repeat(80)}`, 'x'],
  ])('refuses the header name %j', (name, value) => {
    expect(issuesOf({ ...minimal, headers: { [name]: value } })).toHaveLength(1);
  });

  it.each(['a\r\nBcc: victim@example.com', 'a\nb', 'a\rb', 'a\u0000b', 'x'.repeat(901)])(
    'refuses the header value %j',
    (value) => {
      expect(issuesOf({ ...minimal, headers: { 'X-Test': value } })).toEqual([
        { path: 'headers.X-Test', message: expect.any(String) },
      ]);
    },
  );

  it('refuses the same header twice in different case', () => {
    expect(issuesOf({ ...minimal, headers: { 'X-A': '1', 'x-a': '2' } })).toEqual([
      { path: 'headers.x-a', message: 'header given twice (names are case-insensitive)' },
    ]);
  });

  it('refuses injection through subject, names and addresses', () => {
    const issues = issuesOf({
      from: { name: 'Eve\r\nBcc: x@example.com', address: 'eve@example.com' },
      to: ['ok@example.org', 'b@example.org>\r\nRCPT TO:<x@example.net>'],
      replyTo: 'r@example.com\nX: y',
      subject: 'Hi\r\nBcc: victim@example.com',
      text: 'x',
    });
    expect(issues.map((i) => i.path).sort()).toEqual(['from', 'replyTo', 'subject', 'to[1]']);
  });

  it('checks tags, messageId and date', () => {
    const issues = issuesOf({
      ...minimal,
      tags: { 'bad name': 'x', ok: 'v\n' },
      messageId: 'no-at-sign',
      date: '28 Nov 2026',
    });
    expect(issues.map((i) => i.path)).toEqual(['tags["bad name"]', 'tags.ok', 'messageId', 'date']);
    expect(
      issuesOf({
        ...minimal,
        tags: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`t${i}`, 'v'])),
      }),
    ).toEqual([{ path: 'tags', message: 'at most 10 tags' }]);
  });

  it('limits the subject length', () => {
    expect(validateSendRequest({ ...minimal, subject: 's'.repeat(998) }).ok).toBe(true);
    expect(issuesOf({ ...minimal, subject: 's'.repeat(999) })).toEqual([
      { path: 'subject', message: 'subject is longer than 998 characters' },
    ]);
  });
});

describe('decodedSize', () => {
  it('adds the UTF-8 bodies and the decoded attachments', () => {
    const request = validValue({
      ...minimal,
      text: 'héllo', // 6 octets
      html: '<p>✓</p>', // 10 octets
      attachments: [
        { filename: 'a', content: Buffer.alloc(1000, 7).toString('base64') },
        { filename: 'b', content: 'YQ==' },
        { filename: 'c', content: 'YWI=' },
        { filename: 'd', content: '' },
      ],
    });
    expect(decodedSize(request)).toBe(6 + 10 + 1000 + 1 + 2);
  });
});

describe('validateSendRequest: text that shows other than it is', () => {
  const RLO = '\u202e';
  it.each([
    ['subject', { subject: `Invoice ${RLO}fdp.exe` }, 'subject'],
    ['display name', { from: { name: `Bank${'\u200f'}`, address: 'a@example.com' } }, 'from'],
    ['display name in a string', { to: [`"Pay${'\u2066'}pal" <p@example.org>`] }, 'to[0]'],
    ['address', { to: [`ad${'\u061c'}min@example.org`] }, 'to[0]'],
    ['address with a C1 control', { to: ['a\u0085b@example.org'] }, 'to[0]'],
    ['address with a lone surrogate', { to: ['ab\ud800@example.org'] }, 'to[0]'],
    ['display name with a lone surrogate', { from: { name: 'x\udc00', address: 'a@example.com' } }, 'from'],
    [
      'filename',
      { attachments: [{ filename: `report${RLO}fdp.exe`, content: 'YWJj' }] },
      'attachments[0].filename',
    ],
  ])(
    'refuses a bidi control, C1 control or lone surrogate in the %s (400 naming the field)',
    (_what, extra, path) => {
      const issues = issuesOf({ ...minimal, ...extra });
      expect(issues).toEqual([{ path, message: expect.stringMatching(/U\+[0-9A-F]{4}|lone surrogate/) }]);
    },
  );

  it('still takes right-to-left text itself, and non-ASCII addresses', () => {
    const result = validateSendRequest({ ...minimal, subject: 'שלום עולם', to: ['ünïcode@example.org'] });
    expect(result.ok).toBe(true);
  });
});
