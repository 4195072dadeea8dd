// EHLO reply → typed extensions (RFC 5321 §4.1.1.1; SIZE RFC 1870, PIPELINING RFC 2920, STARTTLS RFC 3207,
// AUTH RFC 4954, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, ENHANCEDSTATUSCODES RFC 2034, DSN RFC 3461,
// CHUNKING RFC 3030, REQUIRETLS RFC 8689). Pure; tolerant of case and extra spaces, strict about numbers.
import type { AuthMechanism, Extensions, Reply } from './types.ts';

const KNOWN_MECHANISMS: readonly AuthMechanism[] = ['PLAIN', 'LOGIN', 'XOAUTH2'];

/** What a server that answered HELO (or nothing yet) offers: nothing. */
export function noExtensions(): Extensions {
  return {
    pipelining: false,
    starttls: false,
    auth: [],
    eightBitMime: false,
    smtpUtf8: false,
    enhancedStatusCodes: false,
    dsn: false,
    chunking: false,
    requireTls: false,
    keywords: new Map(),
  };
}

export function parseExtensions(reply: Reply): Extensions {
  const keywords = new Map<string, string[]>();
  // The first line is the server's name and greeting, not a keyword.
  for (const line of reply.lines.slice(1)) {
    const words = line.trim().split(/[ \t]+/);
    let keyword = words[0]?.toUpperCase() ?? '';
    let params = words.slice(1);
    // Old servers advertise "AUTH=PLAIN LOGIN" (pre-RFC 4954 syntax) besides or instead of "AUTH PLAIN LOGIN".
    if (keyword.startsWith('AUTH=')) {
      params = [keyword.slice(5), ...params];
      keyword = 'AUTH';
    }
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(keyword)) continue;
    const existing = keywords.get(keyword);
    keywords.set(keyword, existing ? [...existing, ...params] : params);
  }

  const extensions = noExtensions();
  extensions.keywords = keywords;
  extensions.pipelining = keywords.has('PIPELINING');
  extensions.starttls = keywords.has('STARTTLS');
  extensions.eightBitMime = keywords.has('8BITMIME');
  extensions.smtpUtf8 = keywords.has('SMTPUTF8');
  extensions.enhancedStatusCodes = keywords.has('ENHANCEDSTATUSCODES');
  extensions.dsn = keywords.has('DSN');
  extensions.chunking = keywords.has('CHUNKING');
  extensions.requireTls = keywords.has('REQUIRETLS');
  const size = keywords.get('SIZE');
  if (size) {
    const limit = size[0];
    // "SIZE" alone or "SIZE 0" means no fixed limit; anything else non-numeric is ignored as unknown.
    if (limit === undefined) extensions.size = 0;
    else if (/^\d{1,15}$/.test(limit)) extensions.size = Number(limit);
  }
  const mechanisms = new Set((keywords.get('AUTH') ?? []).map((m) => m.toUpperCase()));
  extensions.auth = KNOWN_MECHANISMS.filter((m) => mechanisms.has(m));
  return extensions;
}
