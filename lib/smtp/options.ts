// Option defaults and validation, done once before any byte is sent (undici's habit: specific messages).
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { hostname } from 'node:os';
import { checkArgument } from './envelope.ts';
import { SmtpError } from './errors.ts';
import type { AuthMechanism, SmtpClientOptions, SmtpTimeouts, TlsMode } from './types.ts';

/** Fit for a Lambda with a bounded run time: a dead peer is noticed well within a minute or two. */
export const DEFAULT_TIMEOUTS: Readonly<SmtpTimeouts> = Object.freeze({
  connect: 10_000,
  greeting: 10_000,
  command: 30_000,
  data: 60_000,
  dataEnd: 60_000,
});

const DEFAULT_PORTS: Record<TlsMode, number> = { implicit: 465, starttls: 587, none: 25 };
const MECHANISMS: readonly AuthMechanism[] = ['PLAIN', 'LOGIN', 'XOAUTH2'];

export interface ResolvedOptions extends Omit<SmtpClientOptions, 'timeouts'> {
  port: number;
  tls: TlsMode;
  requireTLS: boolean;
  rejectUnauthorized: boolean;
  /** Undefined: EHLO names the connection's local address (see ehloName). */
  name: string | undefined;
  pipelining: boolean;
  chunking: boolean;
  allowInsecureAuth: boolean;
  transcriptData: boolean;
  timeouts: SmtpTimeouts;
}

function invalid(message: string): SmtpError {
  return new SmtpError('SMTP_INVALID_ARGUMENT', message, { stage: 'connect' });
}

/**
 * A host name or address as an EHLO argument (RFC 5321 §4.1.3): an IP address becomes its address literal
 * (`[192.0.2.1]`, `[IPv6:2001:db8::1]`; an IPv4-mapped IPv6 address is the IPv4 literal), a domain stays as it
 * is; undefined when it is neither (e.g. a host name with `_`).
 */
export function ehloName(host: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)?.[1];
  if (mapped !== undefined && isIPv4(mapped)) return `[${mapped}]`;
  if (isIPv4(host)) return `[${host}]`;
  if (isIPv6(host)) return `[IPv6:${host}]`;
  return /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host) ? host : undefined;
}

function checkName(name: string): string {
  checkArgument(name, 'options.name', 'ehlo');
  if (name.length === 0 || /\s/.test(name)) throw invalid('options.name must be a domain or address literal');
  return isIP(name) ? ehloName(name)! : name;
}

export function resolveOptions(options: SmtpClientOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw invalid('options must be an object');
  const { host } = options;
  if (typeof host !== 'string' || host.length === 0) throw invalid('options.host must be a non-empty string');
  checkArgument(host, 'options.host', 'connect');

  const tls = options.tls ?? 'starttls';
  if (!(tls in DEFAULT_PORTS))
    throw invalid(`options.tls must be implicit, starttls or none, not ${String(tls)}`);
  const port = options.port ?? DEFAULT_PORTS[tls];
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('options.port must be 1–65535');

  const requireTLS = options.requireTLS ?? tls === 'starttls';
  if (requireTLS && tls === 'none') throw invalid("options.requireTLS cannot be true with tls 'none'");

  // Without a name: the host name when it is usable, else (undefined) the connection's local address at EHLO.
  const name = options.name === undefined ? ehloName(hostname()) : checkName(options.name);

  const timeouts = { ...DEFAULT_TIMEOUTS };
  for (const [key, value] of Object.entries(options.timeouts ?? {})) {
    if (!(key in DEFAULT_TIMEOUTS)) throw invalid(`options.timeouts.${key} is not a known timeout`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw invalid(`options.timeouts.${key} must be a positive number of milliseconds`);
    }
    timeouts[key as keyof SmtpTimeouts] = value;
  }

  if (options.auth !== undefined) {
    const { auth } = options;
    if (typeof auth?.user !== 'string' || auth.user.length === 0)
      throw invalid('options.auth.user is required');
    const secret = 'accessToken' in auth ? auth.accessToken : auth.pass;
    if (typeof secret !== 'string') throw invalid('options.auth needs pass or accessToken');
    // Credentials travel base64-encoded, yet NUL and \x01 are separators inside PLAIN and XOAUTH2.
    if (/[\x00-\x1f\x7f]/.test(auth.user) || /[\x00\x01\r\n]/.test(secret)) {
      throw new SmtpError('SMTP_INVALID_ARGUMENT', 'options.auth contains a control character', {
        stage: 'auth',
      });
    }
  }
  if (options.authMethod !== undefined && !MECHANISMS.includes(options.authMethod)) {
    throw invalid(`options.authMethod must be one of ${MECHANISMS.join(', ')}`);
  }

  return {
    ...options,
    port,
    tls,
    requireTLS,
    rejectUnauthorized: options.rejectUnauthorized !== false,
    name,
    pipelining: options.pipelining ?? true,
    chunking: options.chunking ?? true,
    allowInsecureAuth: options.allowInsecureAuth ?? false,
    transcriptData: options.transcriptData ?? false,
    timeouts,
  };
}
