// Public types of the SMTP client: values only, no behaviour. lib/smtp imports nothing from the rest of the
// project, and nothing in lib/smtp is imported by this file but Node's types.
import type { Readable } from 'node:stream';

/** How the connection is secured: TLS from the first byte (port 465), STARTTLS upgrade (587/25), or never. */
export type TlsMode = 'implicit' | 'starttls' | 'none';

/** A protocol step; errors and transcript events name the one they happened in. */
export type SmtpStage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'helo'
  | 'starttls'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'dot'
  | 'bdat'
  | 'rset'
  | 'noop'
  | 'quit';

/** A server reply as a value. `enhanced` is the RFC 3463 code ("2.1.5") when the server sent one. */
export interface Reply {
  code: number;
  enhanced?: string;
  lines: string[];
}

export type AuthMechanism = 'PLAIN' | 'LOGIN' | 'XOAUTH2';

/** What EHLO advertised, as typed values (RFC 5321 §4.1.1.1 and the extension RFCs). */
export interface Extensions {
  /** SIZE (RFC 1870): the declared limit in octets; 0 when offered without a limit; undefined when not offered. */
  size?: number;
  pipelining: boolean;
  starttls: boolean;
  auth: AuthMechanism[];
  eightBitMime: boolean;
  smtpUtf8: boolean;
  enhancedStatusCodes: boolean;
  dsn: boolean;
  chunking: boolean;
  /** REQUIRETLS (RFC 8689): the server will only relay the message over TLS, onward too. */
  requireTls: boolean;
  /** Every keyword (upper-cased) with its parameters, including the ones above and any unknown ones. */
  keywords: ReadonlyMap<string, readonly string[]>;
}

/** Milliseconds. Defaults fit a Lambda with a bounded run time (see DEFAULT_TIMEOUTS in options.ts). */
export interface SmtpTimeouts {
  /** TCP connect (and the TLS handshake for implicit TLS). */
  connect: number;
  /** The 220 greeting after connect. */
  greeting: number;
  /** Each command's reply. */
  command: number;
  /** Idle time while the body is streamed (no byte accepted by the socket for this long). */
  data: number;
  /** The final reply after end of data / the last BDAT chunk. */
  dataEnd: number;
}

export type SmtpCredentials = { user: string; pass: string } | { user: string; accessToken: string };

export interface SmtpClientOptions {
  host: string;
  /** Default: 465 for implicit, 587 for starttls, 25 for none. */
  port?: number;
  /** Default 'starttls'. */
  tls?: TlsMode;
  /** With 'starttls': stop before MAIL FROM unless the upgrade succeeded. Default true. */
  requireTLS?: boolean;
  /** The trusted CA certificates (PEM). Given, they replace Node's trust store (Mozilla's roots) for this
   *  connection, as Node's own `ca` does: only a relay whose chain ends in one of them is accepted. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** TLS server name for SNI and certificate checks; default `host` (unless it is an IP address). */
  servername?: string;
  /** Certificates are always verified unless this is explicitly false. */
  rejectUnauthorized?: boolean;
  /** EHLO name (a bare IP becomes its address literal); default os.hostname(), else the local address literal. */
  name?: string;
  auth?: SmtpCredentials;
  /** Force one mechanism; default: the best one the server offers (XOAUTH2 for tokens; PLAIN, then LOGIN). */
  authMethod?: AuthMechanism;
  /** Allow credentials over an unencrypted connection to a non-loopback host. Default false. */
  allowInsecureAuth?: boolean;
  /** Use PIPELINING when offered. Default true. */
  pipelining?: boolean;
  /** Use CHUNKING (BDAT) instead of DATA when offered. Default true. */
  chunking?: boolean;
  timeouts?: Partial<SmtpTimeouts>;
  /** Where the session is recorded; the caller owns it, so it survives a failed connect. */
  transcript?: Transcript;
  /** Record the DATA payload itself, not only its size. Default false. */
  transcriptData?: boolean;
}

/** Per-transaction options of SmtpConnection.send. */
export interface SendOptions {
  /** Marks every transcript line of this transaction (commands, their replies, the message summary), so
   *  that one connection's transcript can be split into the parts of the messages it carried. */
  tag?: string;
}

export interface Envelope {
  from: string;
  to: string[];
  /** Octets of the message, sent as SIZE= when the server offers SIZE. */
  size?: number;
  /** The body has 8-bit octets: BODY=8BITMIME (fails with SMTP_8BIT_UNSUPPORTED if not offered). */
  eightBit?: boolean;
  /** An address or header needs SMTPUTF8 (fails with SMTP_SMTPUTF8_UNSUPPORTED if not offered). */
  smtpUtf8?: boolean;
  /** Delivery status notifications (RFC 3461), sent when the server offers DSN (else noted in the transcript
   *  and left out): RET= and ENVID= on MAIL, NOTIFY= and ORCPT= on every RCPT. */
  dsn?: DsnOptions;
  /** REQUIRETLS on MAIL (RFC 8689): the message must travel over TLS all the way. Fails with
   *  SMTP_REQUIRETLS_UNSUPPORTED, before MAIL, unless the connection is TLS with a verified certificate and
   *  the server offers REQUIRETLS. */
  requireTls?: boolean;
}

/** When the recipient's server reports: NOTIFY=NEVER, or any of SUCCESS, FAILURE, DELAY. */
export type DsnNotify = 'success' | 'failure' | 'delay';

export interface DsnOptions {
  /** NOTIFY= on each RCPT; absent leaves it to the server (failure and delay, RFC 3461 §4.1). */
  notify?: readonly DsnNotify[] | readonly ['never'];
  /** RET=: a failure report carries the whole message or only its headers. */
  ret?: 'full' | 'hdrs';
  /** ENVID=: the sender's id for this transaction, echoed in reports; 1-100 printable ASCII characters. */
  envid?: string;
}

/** A message body: bytes, a string, or a stream. Line endings are normalised to CRLF on the way out. */
export type MessageBody = string | Uint8Array | Readable | AsyncIterable<Uint8Array | string>;

/** accepted = 2xx; deferred = 4xx (try again later); failed = 5xx (never retry). */
export type RecipientStatus = 'accepted' | 'deferred' | 'failed';

export interface RecipientOutcome {
  address: string;
  status: RecipientStatus;
  /** The reply that decided it: the RCPT reply, or the end-of-data reply for recipients RCPT accepted. */
  reply: Reply;
}

/** The result of one transaction on a connection that is still usable afterwards. */
export interface SendResult {
  mail: Reply;
  recipients: RecipientOutcome[];
  /** The final reply to the message data (end of DATA, or the last BDAT); absent if the data was never sent. */
  data?: Reply;
}

export interface TranscriptEntry {
  at: Date;
  /** C: client to server, S: server to client, *: an event (connect, TLS, timeout, error, retry). */
  kind: 'C' | 'S' | '*';
  text: string;
  /** The transaction the line belongs to (SendOptions.tag); absent for the connection's own lines. */
  tag?: string;
}

/** The session record a caller gets back. Credentials never reach it. */
export interface Transcript {
  readonly entries: readonly TranscriptEntry[];
  add(kind: TranscriptEntry['kind'], text: string, tag?: string): void;
  /** `2026-11-28T10:00:00.000Z S: 220 …` lines joined with \n, ending with \n: one line per entry. */
  toString(): string;
}

/** Short, in-invocation retries of transient outcomes (long back-offs belong to the queue). */
export interface RetryPolicy {
  /** Total attempts including the first; 1 means no retry. */
  attempts: number;
  /** First back-off; doubled each attempt, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Epoch ms that no attempt or back-off may run past (a Lambda's remaining time). */
  deadline?: number;
}

/** The stable `code` of an SmtpError (errors.ts); callers branch on it, never on the message text. */
export type SmtpErrorCode =
  | 'SMTP_REPLY'
  | 'SMTP_TIMEOUT'
  | 'SMTP_TLS_REQUIRED'
  | 'SMTP_TLS'
  | 'SMTP_PROTOCOL'
  | 'SMTP_CONNECTION'
  | 'SMTP_AUTH'
  | 'SMTP_INVALID_ARGUMENT'
  | 'SMTP_SMTPUTF8_UNSUPPORTED'
  | 'SMTP_8BIT_UNSUPPORTED'
  | 'SMTP_SIZE'
  | 'SMTP_REQUIRETLS_UNSUPPORTED'
  | 'SMTP_BODY'
  // Raised by callers of lib/smtp about their SMTP side, never by lib/smtp itself: the relay's credentials
  // could not be read (the worker), and no further connection is tried in this invocation (lib/delivery's
  // RelaySender). Both are transient. The names are kept as they were: they are in stored status records.
  | 'SMTP_CREDENTIALS'
  | 'SESSION_EXHAUSTED';

/**
 * A connection's life, one state (wire.ts holds it and every transition):
 * `opening` (connect to the end of AUTH) → `ready` (transactions) → `quitting` (QUIT under way) → `closed`;
 * `opening` or `ready` → `closed` (the caller closed it); any state but `closed` → `broken` (a failure).
 */
export type ConnectionState = 'opening' | 'ready' | 'quitting' | 'closed' | 'broken';
