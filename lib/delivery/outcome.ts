// What one attempt decided for one recipient, and how SMTP results and errors map onto it
// (DESIGN "Retry policy"): 2xx delivered · 5xx failed for good · 4xx, 421, timeouts, broken connections,
// TLS and session-setup problems deferred.
import { isPermanent, SmtpError } from '../smtp/index.ts';
import type { RecipientOutcome, Reply, SmtpStage } from '../smtp/types.ts';

export type RecipientResult =
  | { state: 'delivered'; reply: Reply }
  | { state: 'failed'; reply?: Reply; error?: string }
  | { state: 'deferred'; reply?: Reply; error?: string };

/** Stages before the first transaction: a failure there says nothing about the message or its recipients. */
const SESSION_STAGES: ReadonlySet<SmtpStage> = new Set([
  'connect',
  'greeting',
  'ehlo',
  'helo',
  'starttls',
  'auth',
]);

export function fromRecipientOutcome(outcome: RecipientOutcome): RecipientResult {
  switch (outcome.status) {
    case 'accepted':
      return { state: 'delivered', reply: outcome.reply };
    case 'failed':
      return { state: 'failed', reply: outcome.reply };
    case 'deferred':
      return { state: 'deferred', reply: outcome.reply };
  }
}

/** lib/smtp codes that say this message can never pass this relay, however often it is tried. */
const MESSAGE_REJECTED_CODES: ReadonlySet<string> = new Set([
  'SMTP_SMTPUTF8_UNSUPPORTED',
  'SMTP_8BIT_UNSUPPORTED',
  'SMTP_SIZE',
  'SMTP_INVALID_ARGUMENT',
  // REQUIRETLS asked for, and this relay (or this connection) cannot carry it: never sent without it.
  'SMTP_REQUIRETLS_UNSUPPORTED',
]);

/**
 * A transaction that did not complete. Problems with the session itself (the relay is down, refuses us,
 * TLS or AUTH fails) are deferred even when permanent: they are the operator's to fix, and the queue's
 * maximum age bounds the retries. Inside a transaction the recipients fail only on a 5xx, or when the
 * message itself cannot pass this relay (it needs SMTPUTF8 or 8BITMIME the relay lacks, or exceeds its
 * SIZE); timeouts, lost connections and protocol errors (a server glitch, not a verdict) defer them.
 */
export function fromFailure(thrown: unknown): RecipientResult {
  const text = describeFailure(thrown);
  if (!(thrown instanceof SmtpError)) return { state: 'deferred', reply: undefined, error: text };
  const error = thrown;
  const rejected =
    !SESSION_STAGES.has(error.stage) &&
    (error.reply ? isPermanent(error.reply) : MESSAGE_REJECTED_CODES.has(error.code));
  return rejected
    ? { state: 'failed', reply: error.reply, error: text }
    : { state: 'deferred', reply: error.reply, error: text };
}

/**
 * A failure as the status record and the transcript say it, which API callers read. smtpq's own errors
 * (a stable `code`) are written by us and say what happened; anything else — an SDK's or Node's error that
 * escaped, whose text may hold ARNs, account ids or paths — is only named as internal.
 */
export function describeFailure(thrown: unknown): string {
  if (!(thrown instanceof SmtpError))
    return "INTERNAL_ERROR: the attempt broke off on an internal error (the worker's log has it)";
  return `${thrown.code}: ${thrown.message} during ${thrown.stage}`;
}
