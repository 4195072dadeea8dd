// SASL mechanisms as pure values (Go net/smtp's habit): `start` gives the initial response, `next` answers a
// server challenge; both return the bytes to send (base64-encoding is the caller's). No I/O, no logging.
import type { AuthMechanism, SmtpCredentials } from './types.ts';

export interface SaslMechanism {
  readonly name: AuthMechanism;
  /** The initial response sent with `AUTH NAME`, or undefined to wait for the first challenge. */
  start(): Buffer | undefined;
  /** The response to a 334 challenge (already base64-decoded). */
  next(challenge: Buffer): Buffer;
}

/** RFC 4616: authzid (empty) NUL authcid NUL password, sent as the initial response. */
export function plain(user: string, pass: string): SaslMechanism {
  return {
    name: 'PLAIN',
    start: () => Buffer.from(`\0${user}\0${pass}`, 'utf8'),
    // A server that sends a challenge after PLAIN's initial response gets an empty answer, then fails us.
    next: () => Buffer.alloc(0),
  };
}

/** The de-facto LOGIN mechanism (draft-murchison-sasl-login): user name, then password, each on request. */
export function login(user: string, pass: string): SaslMechanism {
  let step = 0;
  return {
    name: 'LOGIN',
    start: () => undefined,
    // Servers prompt "Username:" then "Password:", but prompts vary; the order is what counts.
    next: () => Buffer.from(step++ === 0 ? user : pass, 'utf8'),
  };
}

/** Google/Microsoft XOAUTH2 (the RFC 7628 OAUTHBEARER predecessor). A challenge carries a JSON error; the
 *  client answers it with an empty response and the server then sends the final 5xx (RFC 7628 §3.2.3). */
export function xoauth2(user: string, accessToken: string): SaslMechanism {
  return {
    name: 'XOAUTH2',
    start: () => Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8'),
    next: () => Buffer.alloc(0),
  };
}

/** Picks the mechanism: the forced one, else XOAUTH2 for a token, else PLAIN, then LOGIN, among those offered. */
export function chooseMechanism(
  credentials: SmtpCredentials,
  offered: readonly AuthMechanism[],
  forced?: AuthMechanism,
): SaslMechanism | undefined {
  const token = 'accessToken' in credentials ? credentials.accessToken : undefined;
  const pass = 'pass' in credentials ? credentials.pass : undefined;
  const build = (name: AuthMechanism): SaslMechanism | undefined => {
    if (name === 'XOAUTH2') return token === undefined ? undefined : xoauth2(credentials.user, token);
    if (pass === undefined) return undefined;
    return name === 'PLAIN' ? plain(credentials.user, pass) : login(credentials.user, pass);
  };
  if (forced) return offered.includes(forced) ? build(forced) : undefined;
  const order: AuthMechanism[] = token === undefined ? ['PLAIN', 'LOGIN'] : ['XOAUTH2'];
  for (const name of order) if (offered.includes(name)) return build(name);
  return undefined;
}
