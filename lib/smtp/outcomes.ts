// Per-recipient outcomes from replies: 2xx accepted, 4xx deferred, anything else failed.
import type { RecipientOutcome, RecipientStatus, Reply, SendResult } from './types.ts';

export function statusOf(reply: Reply): RecipientStatus {
  if (reply.code >= 200 && reply.code < 300) return 'accepted';
  return reply.code >= 400 && reply.code < 500 ? 'deferred' : 'failed';
}

export function recipientOutcomes(recipients: string[], replies: Reply[]): RecipientOutcome[] {
  return recipients.map((address, i) => {
    const reply = replies[i]!;
    return { address, status: statusOf(reply), reply };
  });
}

/** MAIL refused: every recipient takes its reply. */
export function everyRecipient(recipients: string[], reply: Reply): RecipientOutcome[] {
  return recipients.map((address) => ({ address, status: statusOf(reply), reply }));
}

/** Recipients RCPT accepted take the status of the reply to the message data. */
export function settle(outcomes: RecipientOutcome[], final: Reply): void {
  for (const outcome of outcomes) {
    if (outcome.status === 'accepted') {
      outcome.status = statusOf(final);
      outcome.reply = final;
    }
  }
}

const TOO_MANY_RECIPIENTS = 452;

/**
 * The recipients to send in a further transaction at once (RFC 5321 §4.5.3.1.10): those refused at RCPT with
 * 452 when the server settled another recipient of the same transaction — accepted it, or refused it for good
 * (a 5xx is a decision too, and a server's limit counts RCPT commands, not acceptances). With nothing settled,
 * a 452 is a real shortage: none here, the caller defers them like any 4xx. A 452 to the message data is not
 * a RCPT refusal. Each further transaction settles at least one recipient, so splitting ends.
 */
export function furtherTransaction(result: SendResult): string[] {
  const atRcpt = (outcome: RecipientOutcome) => !isDataReply(outcome.reply, result.data);
  const overflow = result.recipients.filter((o) => atRcpt(o) && o.reply.code === TOO_MANY_RECIPIENTS);
  if (overflow.length === 0) return [];
  const settled = result.recipients.some((o) => !atRcpt(o) || o.status !== 'deferred');
  return settled ? overflow.map((o) => o.address) : [];
}

/** The end-of-data reply given to every recipient RCPT accepted, as opposed to a RCPT reply. */
function isDataReply(reply: Reply, data: Reply | undefined): boolean {
  if (!data) return false;
  return reply === data || (reply.code === data.code && reply.lines.join('\n') === data.lines.join('\n'));
}
