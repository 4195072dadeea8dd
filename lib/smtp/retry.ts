// Short, in-invocation retries of transient outcomes (4xx, 421, timeout, connection loss; never 5xx) with
// exponential back-off and full jitter, within a deadline it never runs past. Only recipients not accepted
// yet are sent again. Recipients refused with 452 (too many recipients) while the server settled others go in
// a further transaction at once (sendSplitting, split.ts): that is not a failure, and it does not use up an
// attempt.
import { SmtpConnection } from './connection.ts';
import { SmtpError } from './errors.ts';
import { DEFAULT_TIMEOUTS } from './options.ts';
import { isTransient } from './reply.ts';
import { type SplitRound, sendSplitting } from './split.ts';
import type {
  Envelope,
  MessageBody,
  RecipientOutcome,
  Reply,
  RetryPolicy,
  SmtpClientOptions,
  Transcript,
} from './types.ts';

/** What sendWithRetry hands back after its last attempt. */
export interface RetryResult {
  /** Final outcome per envelope recipient, in envelope order. */
  recipients: RecipientOutcome[];
  /** Attempts made (transactions after a 452 split do not count as attempts). */
  attempts: number;
  /** The last session-level error, when the last attempt ended in one. */
  error?: SmtpError;
  /** The connection, when it is still usable, for the caller to reuse or quit. */
  connection?: SmtpConnection;
}

export interface SendWithRetryArgs {
  options: SmtpClientOptions;
  envelope: Envelope;
  /** A fresh body for each attempt (a stream can be read once). */
  body: () => MessageBody;
  policy: RetryPolicy;
  /** A connection to use first (reused when it is still usable). */
  connection?: SmtpConnection;
  /** Where attempts are recorded; default options.transcript. */
  transcript?: Transcript;
  sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the jitter (tests pin it). */
  random?: () => number;
}

/** Session errors worth another attempt now: the reply's 4xx, 421, timeouts and lost connections. */
export function isRetryable(error: SmtpError): boolean {
  if (error.code === 'SMTP_TIMEOUT' || error.code === 'SMTP_CONNECTION') return true;
  return error.code === 'SMTP_REPLY' && error.reply !== undefined && isTransient(error.reply);
}

/** The reply recorded for recipients when the session failed without one of its own. */
function replyFor(error: SmtpError): Reply {
  if (error.reply) return error.reply;
  return error.transient
    ? { code: 451, enhanced: '4.4.0', lines: [`4.4.0 ${error.code}: ${error.message}`] }
    : { code: 554, enhanced: '5.0.0', lines: [`5.0.0 ${error.code}: ${error.message}`] };
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function sendWithRetry(args: SendWithRetryArgs): Promise<RetryResult> {
  const { envelope, policy } = args;
  const transcript = args.transcript ?? args.options.transcript;
  const options: SmtpClientOptions = { ...args.options, transcript };
  const sleep = args.sleep ?? defaultSleep;
  const random = args.random ?? Math.random;
  checkPolicy(policy);
  const maxAttempts = Math.floor(policy.attempts);
  if (!Array.isArray(envelope?.to)) {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', 'envelope.to must be an array', { stage: 'rcpt' });
  }
  const connectOptions = policy.deadline === undefined ? options : withDeadline(options, policy.deadline);

  const final = new Map<string, RecipientOutcome>();
  let remaining = [...new Set(envelope.to)];
  let connection = args.connection?.usable ? args.connection : undefined;
  let attempts = 0;
  let lastError: SmtpError | undefined;

  while (remaining.length > 0) {
    if (policy.deadline !== undefined && Date.now() >= policy.deadline) {
      transcript?.add('*', 'no attempt: the deadline has passed');
      break;
    }
    attempts++;
    transcript?.add('*', `attempt ${attempts} of ${maxAttempts}: ${remaining.length} recipient(s)`);
    lastError = undefined;
    const send = async (to: string[]) => {
      connection ??= await SmtpConnection.connect(connectOptions);
      connection.deadline = policy.deadline;
      return connection.send({ ...envelope, to }, args.body());
    };
    const onSplit = (further: readonly string[]) =>
      transcript?.add('*', `452: ${further.length} recipient(s) go in a further transaction`);
    const round = await sendSplitting(remaining, send, { onSplit });
    const { next, error } = takeRound(round, final);
    remaining = next;
    if (error) {
      lastError = error;
      if (connection && !connection.usable) connection = undefined;
      if (!isRetryable(error)) break;
    }
    if (remaining.length === 0 || attempts >= maxAttempts) break;
    const delay = backOff(policy, attempts, random);
    if (policy.deadline !== undefined && Date.now() + delay >= policy.deadline) {
      transcript?.add('*', `no further attempt: the deadline is in ${policy.deadline - Date.now()} ms`);
      break;
    }
    transcript?.add('*', `retrying ${remaining.length} recipient(s) in ${delay} ms`);
    await sleep(delay);
  }

  if (connection) connection.deadline = undefined;
  return {
    recipients: envelope.to.map((address) => final.get(address) ?? notAttempted(address)),
    attempts,
    ...(lastError ? { error: lastError } : {}),
    ...(connection?.usable ? { connection } : {}),
  };
}

/** Records a round's outcomes in `final`. Returns the recipients for the next attempt (the deferred ones,
 *  then those of a transaction that failed as a whole) and the error that ended the round, if any. */
function takeRound(round: SplitRound, final: Map<string, RecipientOutcome>) {
  for (const [address, outcome] of round.outcomes) final.set(address, outcome);
  // Deferred in this attempt (not split off after a 452, which the round sent at once): the next attempt's.
  const later = [...round.outcomes.values()]
    .filter((o) => o.status === 'deferred' && !round.unsent.includes(o.address))
    .map((o) => o.address);
  if (round.error === undefined) return { next: [...later, ...round.unsent] };
  const error = round.error;
  if (!(error instanceof SmtpError)) throw error;
  // The status follows what the error is (a TLS failure may well pass later: deferred, for the queue);
  // whether to try again right now is the narrower question isRetryable answers.
  const reply = replyFor(error);
  const status = error.transient ? 'deferred' : 'failed';
  for (const address of round.unsent) final.set(address, { address, status, reply });
  return { next: [...later, ...round.unsent], error };
}

/** Exponential back-off with full jitter: a random delay below base × 2^(attempt-1), capped at maxDelayMs. */
function backOff(policy: RetryPolicy, attempts: number, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempts - 1));
  return Math.floor(random() * ceiling);
}

function notAttempted(address: string): RecipientOutcome {
  return {
    address,
    status: 'deferred',
    reply: { code: 451, lines: ['4.4.0 not attempted'], enhanced: '4.4.0' },
  };
}

function checkPolicy(policy: RetryPolicy): void {
  const bad = (what: string) =>
    new SmtpError('SMTP_INVALID_ARGUMENT', `policy.${what}`, { stage: 'connect' });
  if (!Number.isFinite(policy?.attempts) || policy.attempts < 1) throw bad('attempts must be at least 1');
  if (!(policy.baseDelayMs >= 0) || !(policy.maxDelayMs >= 0)) throw bad('delays must be 0 or more ms');
  if (policy.deadline !== undefined && !Number.isFinite(policy.deadline))
    throw bad('deadline must be epoch ms');
}

/** Every timeout of a new connection shortened so that it ends by the deadline. */
export function withDeadline(options: SmtpClientOptions, deadline: number): SmtpClientOptions {
  const left = Math.max(1, deadline - Date.now());
  const timeouts = { ...options.timeouts };
  for (const key of ['connect', 'greeting', 'command', 'data', 'dataEnd'] as const) {
    timeouts[key] = Math.min(timeouts[key] ?? DEFAULT_TIMEOUTS[key], left);
  }
  return { ...options, timeouts };
}
