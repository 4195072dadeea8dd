import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createTranscript,
  describeMessage,
  formatEntries,
  REDACTED,
  redactCommand,
  SmtpError,
} from '../../lib/smtp/index.ts';
import type { TranscriptEntry } from '../../lib/smtp/types.ts';
import { Wire } from '../../lib/smtp/wire.ts';

/** A socket that keeps what the client writes; `push` plays the server's bytes. */
function fakeSocket() {
  const written: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk.toString());
      done();
    },
  });
  return { socket, written };
}

const at = new Date('2026-11-28T10:00:00.000Z');

afterEach(() => {
  vi.useRealTimers();
});

describe('transcript', () => {
  it('renders the session form of DESIGN.md: timestamp, S:/C: lines, "*  " events', () => {
    vi.useFakeTimers({ now: new Date('2026-11-28T10:00:00.000Z'), toFake: ['Date'] });
    const transcript = createTranscript();
    transcript.add('S', '220 mail.example.org ESMTP');
    transcript.add('C', 'EHLO worker.smtpq.example');
    transcript.add('*', 'TLS 1.3 TLS_AES_256_GCM_SHA384, certificate verified for mail.example.org');
    transcript.add('C', describeMessage(1532, 31));
    expect(transcript.toString()).toBe(
      [
        '2026-11-28T10:00:00.000Z S: 220 mail.example.org ESMTP',
        '2026-11-28T10:00:00.000Z C: EHLO worker.smtpq.example',
        '2026-11-28T10:00:00.000Z *  TLS 1.3 TLS_AES_256_GCM_SHA384, certificate verified for mail.example.org',
        '2026-11-28T10:00:00.000Z C: <message: 1532 octets, 31 lines>',
        '',
      ].join('\n'),
    );
    expect(transcript.entries).toHaveLength(4);
    expect(transcript.entries[0]).toMatchObject({ kind: 'S', text: '220 mail.example.org ESMTP' });
  });

  it('redacts AUTH arguments and keeps everything else as is', () => {
    expect(redactCommand('AUTH PLAIN AGFsaWNlAHNlY3JldA==')).toBe('AUTH PLAIN <redacted>');
    expect(redactCommand('auth xoauth2 dXNlcj1h')).toBe('auth xoauth2 <redacted>');
    expect(redactCommand('AUTH LOGIN')).toBe('AUTH LOGIN');
    expect(redactCommand('MAIL FROM:<a@b.example>')).toBe('MAIL FROM:<a@b.example>');
  });

  it('Wire.command records a command with its AUTH argument redacted unless told what to show', () => {
    const { socket, written } = fakeSocket();
    const transcript = createTranscript();
    const wire = new Wire(socket as never, transcript);
    try {
      wire.command('AUTH PLAIN AGFsaWNlAHNlY3JldA==', 'auth', 60_000);
      wire.command('MAIL FROM:<a@b.example>', 'mail', 60_000);
      wire.command('dXNlcg==', 'auth', 60_000, REDACTED);
      expect(transcript.entries.map((e) => e.text)).toEqual([
        'AUTH PLAIN <redacted>',
        'MAIL FROM:<a@b.example>',
        REDACTED,
      ]);
      expect(written.join('')).toContain('AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n');
    } finally {
      wire.fail(new SmtpError('SMTP_CONNECTION', 'test over', { stage: 'quit' }));
    }
  });

  it('keeps the tag an entry was added with, and none when none was given', () => {
    const transcript = createTranscript();
    transcript.add('S', '220 mail.example.org ESMTP');
    transcript.add('C', 'MAIL FROM:<a@b.example>', 'm1/1');
    expect(transcript.entries[0]).not.toHaveProperty('tag');
    expect(transcript.entries[1]).toMatchObject({ kind: 'C', text: 'MAIL FROM:<a@b.example>', tag: 'm1/1' });
    // Tags are for cutting a connection's transcript into parts; they are not written into it.
    expect(transcript.toString()).not.toContain('m1/1');
  });
});

describe('formatEntries', () => {
  it('writes one line per entry: a CR or LF inside an entry is escaped, so line n is entry n', () => {
    const entries: TranscriptEntry[] = [
      { at, kind: 'S', text: '250-first\r\n250 injected' },
      { at, kind: 'C', text: 'bare\nLF and bare\rCR' },
      { at, kind: '*', text: 'last', tag: 'm1/1' },
    ];
    const text = formatEntries(entries);
    expect(text.split('\n')).toEqual([
      '2026-11-28T10:00:00.000Z S: 250-first\\r\\n250 injected',
      '2026-11-28T10:00:00.000Z C: bare\\nLF and bare\\rCR',
      '2026-11-28T10:00:00.000Z *  last',
      '',
    ]);
    expect(text).not.toContain('\r');
  });

  it('is what a transcript renders, and empty for no entries', () => {
    const transcript = createTranscript();
    transcript.add('S', 'a\r\nb');
    transcript.add('C', 'c', 'm1/1');
    expect(transcript.toString()).toBe(formatEntries(transcript.entries));
    expect(formatEntries([])).toBe('');
  });
});

describe('Wire tags', () => {
  it('marks a command, and its reply whenever it comes, with the tag of the transaction that sent it', async () => {
    const { socket } = fakeSocket();
    const transcript = createTranscript();
    const wire = new Wire(socket as never, transcript);
    try {
      wire.tag = 'm1/1';
      const first = wire.command('MAIL FROM:<a@b.example>', 'mail', 60_000);
      wire.tag = 'm2/1';
      const second = wire.command('MAIL FROM:<c@d.example>', 'mail', 60_000);
      wire.tag = undefined;
      wire.note('*', 'a line of the connection');
      // Pipelined: both replies arrive after the write turn has moved on.
      socket.push('250 2.1.0 first ok\r\n250 2.1.0 second ok\r\n');
      await Promise.all([first, second]);

      expect(transcript.entries.map((e) => [e.kind, e.text, e.tag])).toEqual([
        ['C', 'MAIL FROM:<a@b.example>', 'm1/1'],
        ['C', 'MAIL FROM:<c@d.example>', 'm2/1'],
        ['*', 'a line of the connection', undefined],
        ['S', '250 2.1.0 first ok', 'm1/1'],
        ['S', '250 2.1.0 second ok', 'm2/1'],
      ]);
    } finally {
      wire.fail(new SmtpError('SMTP_CONNECTION', 'test over', { stage: 'quit' }));
    }
  });

  it('puts a failure in the part of the oldest transaction still waiting for a reply', async () => {
    const { socket } = fakeSocket();
    const transcript = createTranscript();
    const wire = new Wire(socket as never, transcript);
    wire.tag = 'm1/1';
    const waiting = wire.command('RCPT TO:<x@y.example>', 'rcpt', 60_000);
    wire.tag = 'm2/1';

    wire.fail(new SmtpError('SMTP_TIMEOUT', 'no reply', { stage: 'rcpt' }));

    await expect(waiting).rejects.toMatchObject({ code: 'SMTP_TIMEOUT' });
    expect(transcript.entries.at(-1)).toMatchObject({
      kind: '*',
      text: 'error SMTP_TIMEOUT at rcpt: no reply',
      tag: 'm1/1',
    });
  });

  it("a 421 closing the connection shows in the waiting transaction's part", async () => {
    const { socket } = fakeSocket();
    const transcript = createTranscript();
    const wire = new Wire(socket as never, transcript);
    wire.tag = 'm1/1';
    const waiting = wire.command('MAIL FROM:<a@b.example>', 'mail', 60_000);
    wire.tag = undefined;

    socket.push('421 4.7.0 Too many messages, slow down\r\n');

    await expect(waiting).rejects.toMatchObject({ reply: { code: 421 } });
    expect(transcript.entries.filter((e) => e.tag === 'm1/1').map((e) => e.kind)).toEqual(['C', 'S', '*']);
  });
});
