// One delivery round of a message: a transaction for its recipients, and at once a further one for those a
// server refused with 452 while it settled others (RFC 5321 §4.5.3.1.10; furtherTransaction), until none is
// left. Shared by sendWithRetry (retry.ts, the CLI) and lib/delivery's deliver (the worker); each brings its
// own transaction (a connection, or a session that reconnects once) and its own policy for what follows.
import { furtherTransaction } from './outcomes.ts';
import type { RecipientOutcome, SendResult } from './types.ts';

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
