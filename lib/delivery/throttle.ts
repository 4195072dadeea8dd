// Does this reply mean "the relay is throttling us"? (DESIGN "Retry policy", issue 7 §3.) Throttling is about
// the relay, not the message: the caller pauses the relay for every worker (lib/delivery/relay-limit.ts)
// instead of deferring each message into the same wall. One pure rule, kept here and nowhere else.
//
// Replies that are NOT throttling, and why:
// - 452 (RFC 5321 §4.5.3.1.10): "too many recipients" for this transaction. The rest go in the next
//   transaction (the 452 split), not into a pause, even though the text says "too many".
// - 450 4.2.x without rate text (RFC 3463 §3.3, "mailbox status"): the mailbox is busy or over quota; that
//   is about one recipient.
// - any 5xx: a permanent verdict; pausing would not change it.
// - 2xx and 3xx: success and intermediate replies.
import type { SmtpError } from '../smtp/index.ts';
import type { Reply } from '../smtp/types.ts';

/** The fields of a thrown SmtpError this rule reads. */
export type ThrottleEvidence = Partial<Pick<SmtpError, 'code' | 'reply'>>;

/**
 * Text that says the relay is limiting our rate, whatever the code: "rate limit", "rate exceeded",
 * "Too many messages", "Throttling", "throttled", "slow down". `\brate` keeps "generate", "separate",
 * "accurate" out; "rates", "ratelimit", "rate-limited" are in.
 */
const RATE_TEXT = /\brate|too many|throttl|slow down/i;

/** True when `reply` says the relay is throttling us (see the file comment for what is not). */
export function isThrottlingReply(reply: Reply): boolean {
  switch (reply.code) {
    // RFC 5321 §4.2.3 "Service not available, closing transmission channel", which §3.8 lets a server send
    // at any time before it closes. The relay is shedding load ("421 4.7.0 Too many connections, slow
    // down") or going down; either way no worker should hit it again at once. Any enhanced code, any text.
    case 421:
      return true;
    // Not in RFC 5321's list; defined by the TLS and AUTH extensions (RFC 3207 §4 "TLS not available due
    // to temporary reason", RFC 4954 §6 "4.7.0 Temporary authentication failure"). Amazon SES SMTP uses it for
    // "454 4.7.0 Throttling failure: Maximum sending rate exceeded". In every case the relay cannot serve
    // any worker right now, so the whole relay waits. Any enhanced code, any text.
    case 454:
      return true;
    // RFC 5321 §4.2.3: "Requested action aborted: local error in processing". With RFC 3463 §3.8's 4.7.x
    // ("Security or Policy Status": X.7.0 "Other or undefined security status", X.7.1 "Delivery not
    // authorized, message refused", and the later registered policy codes) it is the relay's policy
    // refusing us for now; without it only rate text makes it throttling (a plain "451 4.3.0 Temporary
    // local problem" is about the message or the relay's disk, and defers as usual).
    case 451:
      return isPolicyCode(reply.enhanced) || hasRateText(reply);
    // RFC 5321 §4.2.3: "Requested mail action not taken: mailbox unavailable (e.g., mailbox busy or
    // temporarily blocked for policy reasons)". Throttling only when the text says so; "450 4.2.1
    // Mailbox busy" is about one recipient.
    case 450:
      return hasRateText(reply);
    default:
      return false;
  }
}

/**
 * The same rule for a thrown error: throttling when it carries a reply that is. A reply attached to a
 * protocol error (lib/smtp's SMTP_PROTOCOL: a reply to no command, data after the STARTTLS 220) is not the
 * relay's answer to anything and says nothing about its rate. Errors without a reply (timeouts, lost
 * connections) are not throttling either: they defer as usual.
 */
export function isThrottlingFailure(error: ThrottleEvidence): boolean {
  if (error.code === 'SMTP_PROTOCOL') return false;
  return error.reply !== undefined && isThrottlingReply(error.reply);
}

/** RFC 3463 §3.8: class 4, subject 7 ("Security or Policy Status"), any detail. */
function isPolicyCode(enhanced: string | undefined): boolean {
  return enhanced?.startsWith('4.7.') === true;
}

function hasRateText(reply: Reply): boolean {
  return reply.lines.some((line) => RATE_TEXT.test(line));
}
