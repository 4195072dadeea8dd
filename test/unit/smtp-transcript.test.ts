import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createTranscript,
  describeMessage,
  REDACTED,
  redactCommand,
  SmtpError,
} from '../../lib/smtp/index.ts';
import { Wire } from '../../lib/smtp/wire.ts';

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
    const written: string[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    });
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
});
