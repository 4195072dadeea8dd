// Per-recipient outcomes from replies: 2xx accepted, 4xx deferred, anything else failed.
import type { RecipientOutcome, RecipientStatus, Reply } from './types.ts';

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
