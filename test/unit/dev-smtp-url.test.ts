// SMTP_URL parsing for `npm run dev`: TLS mode from scheme and ?tls=, percent-decoded credentials, clear errors
// that never echo the password.
import { describe, expect, it } from 'vitest';
import { parseSmtpUrl, SmtpUrlError } from '../../scripts/local/smtp-url.ts';

describe('parseSmtpUrl', () => {
  it('reads host, port, TLS mode and credentials', () => {
    expect(parseSmtpUrl('smtp://me%40corp:p%3Ass@mail.example.com:587?tls=starttls')).toEqual({
      host: 'mail.example.com',
      port: 587,
      tls: 'starttls',
      credentials: { username: 'me@corp', password: 'p:ss' },
    });
  });

  it('defaults to implicit TLS for smtps:// and STARTTLS for smtp://', () => {
    expect(parseSmtpUrl('smtps://mail.example.com')).toEqual({ host: 'mail.example.com', tls: 'implicit' });
    expect(parseSmtpUrl('smtp://[::1]:2525').tls).toBe('starttls');
    expect(parseSmtpUrl('smtp://[::1]:2525').host).toBe('::1');
  });

  it('rejects other schemes, unknown TLS modes and non-URLs without echoing secrets', () => {
    for (const bad of ['http://u:secret@x', 'smtp://u:secret@x?tls=maybe', 'not a url secret']) {
      expect(() => parseSmtpUrl(bad)).toThrow(SmtpUrlError);
      try {
        parseSmtpUrl(bad);
      } catch (error) {
        expect((error as Error).message).not.toContain('secret');
      }
    }
  });
});
