// One delivery round of a message: a transaction for its recipients, and at once a further one for those a
// server refused with 452 while it settled others (RFC 5321 §4.5.3.1.10; furtherTransaction), until none is
// left. Shared by sendWithRetry (retry.ts, the CLI) and lib/delivery's deliver (the worker); each brings its
// own transaction (a connection, or a session that reconnects once) and its own policy for what follows.
import type { RecipientOutcome, Reply, SendResult } from './types.ts';

export interface SplitRound {
  /** Each answered recipient's outcome in the last transaction it was in. */
  outcomes: Map<string, RecipientOutcome>;
  /** The recipients of a transaction that failed as a whole (thrown), with no outcome of their own. */
  unsent: string[];
  /** What that transaction threw. */
  error?: unknown;
  /** Wall-clock milliseconds of each transaction. */
  transactionMs: number[];
}

export interface SplitOptions {
  /** Told before each further transaction, with its recipients. */
  onSplit?: (recipients: readonly string[]) => void;
  now?: () => number;
}

export async function sendSplitting(
  recipients: readonly string[],
  transaction: (to: string[]) => Promise<SendResult>,
  options: SplitOptions = {},
): Promise<SplitRound> {
  const now = options.now ?? Date.now;
  const round: SplitRound = { outcomes: new Map(), unsent: [], transactionMs: [] };
  let remaining = [...new Set(recipients)];
  while (remaining.length > 0) {
    const started = now();
    let result: SendResult;
    try {
      result = await transaction(remaining);
    } catch (error) {
      round.transactionMs.push(now() - started);
      round.unsent = remaining;
      round.error = error;
      break;
    }
    round.transactionMs.push(now() - started);
    for (const outcome of result.recipients) round.outcomes.set(outcome.address, outcome);
    remaining = furtherTransaction(result);
    if (remaining.length > 0) options.onSplit?.(remaining);
  }
  return round;
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
