// Typed errors with a stable `code` (like undici's): callers branch on `code` and `transient`, never on text.
import { formatReply, isTransient } from './reply.ts';
import type { Reply, SmtpErrorCode, SmtpStage } from './types.ts';

export interface SmtpErrorOptions {
  stage: SmtpStage;
  reply?: Reply;
  /** Overrides the default for the code (a reply's first digit decides for SMTP_REPLY, SMTP_AUTH and
   *  SMTP_TLS_REQUIRED; a protocol error is never transient, whatever reply came with it). */
  transient?: boolean;
  cause?: unknown;
}

/** Codes where a later attempt may succeed without anything changing on our side. */
const TRANSIENT_CODES: ReadonlySet<SmtpErrorCode> = new Set([
  'SMTP_TIMEOUT',
  'SMTP_CONNECTION',
  'SMTP_TLS',
  'SMTP_CREDENTIALS',
  'SESSION_EXHAUSTED',
]);
/** Codes whose transience is the server's call: the reply's first digit (4 transient, 5 permanent). */
const REPLY_DECIDES: ReadonlySet<SmtpErrorCode> = new Set(['SMTP_REPLY', 'SMTP_AUTH', 'SMTP_TLS_REQUIRED']);

export class SmtpError extends Error {
  override readonly name = 'SmtpError';
  readonly code: SmtpErrorCode;
  readonly stage: SmtpStage;
  readonly reply?: Reply;
  /** 4xx, 421, timeout, connection loss, TLS handshake failure: a later attempt may succeed. */
  readonly transient: boolean;

  constructor(code: SmtpErrorCode, message: string, options: SmtpErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.stage = options.stage;
    if (options.reply) this.reply = options.reply;
    this.transient =
      options.transient ??
      (options.reply && REPLY_DECIDES.has(code) ? isTransient(options.reply) : TRANSIENT_CODES.has(code));
  }

  /** A reply the client did not expect at this stage, e.g. a 550 to MAIL FROM or a 421 anywhere. */
  static fromReply(stage: SmtpStage, reply: Reply, what = `${stage} rejected`): SmtpError {
    return new SmtpError('SMTP_REPLY', `${what}: ${formatReply(reply)}`, { stage, reply });
  }
}
