// SMTP_URL: a real relay for `npm run dev` instead of the dev SMTP server, in the usual URL form:
//   smtp://user:pass@host:587?tls=starttls   smtps://user:pass@host:465   smtp://host:25?tls=none
// User and password are percent-decoded (a password with "@" or ":" is written %40 / %3A).
import type { TlsMode } from '../../lib/smtp/types.ts';

export interface SmtpRelay {
  host: string;
  port?: number;
  tls: TlsMode;
  credentials?: { username: string; password: string };
}

export class SmtpUrlError extends Error {
  readonly code = 'SMTP_URL_INVALID';
}

const TLS_MODES: readonly TlsMode[] = ['implicit', 'starttls', 'none'];

export function parseSmtpUrl(text: string): SmtpRelay {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SmtpUrlError('SMTP_URL is not a URL (expected smtp://user:pass@host:port?tls=starttls)');
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new SmtpUrlError(`SMTP_URL must start with smtp:// or smtps://, not ${url.protocol}//`);
  }
  const tlsParam = url.searchParams.get('tls');
  if (tlsParam !== null && !TLS_MODES.includes(tlsParam as TlsMode)) {
    throw new SmtpUrlError(`SMTP_URL ?tls= must be one of ${TLS_MODES.join(', ')}, not "${tlsParam}"`);
  }
  const tls: TlsMode = (tlsParam as TlsMode | null) ?? (url.protocol === 'smtps:' ? 'implicit' : 'starttls');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new SmtpUrlError('SMTP_URL has no host');
  let credentials: SmtpRelay['credentials'];
  if (url.username) {
    try {
      credentials = {
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      };
    } catch {
      throw new SmtpUrlError('SMTP_URL user or password has a malformed %-escape');
    }
  }
  return {
    host,
    ...(url.port ? { port: Number(url.port) } : {}),
    tls,
    ...(credentials ? { credentials } : {}),
  };
}
