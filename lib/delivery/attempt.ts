// One delivery attempt of one message, with its ledger: claim (lease, If-Match) → deliver to the open
// recipients → transcript → outcome (If-Match). Two deliveries of the same queue message can never both
// address a recipient: the second one sees the lease, or loses the conditional write, and backs off.
import type { Envelope, MessageBody, Transcript } from '../smtp/types.ts';
import { backoffSeconds, decideRetry, MAX_DEFERRAL_SECONDS, type RetrySettings } from './backoff.ts';
import { deliver } from './deliver.ts';
import {
  type AttemptSummary,
  applyResults,
  claim,
  finishAttempt,
  giveUp,
  isFinal,
  leaseHeldByOther,
  pendingAddresses,
} from './ledger.ts';
import type { RecipientResult } from './outcome.ts';
import {
  type MessageState,
  type RecipientRecord,
  type StatusRecord,
  type StatusStore,
  type TranscriptStore,
  VersionConflictError,
  type Versioned,
} from './ports.ts';
import type { SmtpSession } from './session.ts';

/** The message as the attempt needs it: the envelope sender and flags, and a fresh body stream per transaction. */
export interface PreparedMessage {
  envelope: Omit<Envelope, 'to'>;
  createBody: () => MessageBody;
}

export interface AttemptDeps {
  status: StatusStore;
  transcripts: TranscriptStore;
  session: Pick<SmtpSession, 'attach' | 'send'>;
  createTranscript: () => Transcript;
  retry: RetrySettings;
  now?: () => Date;
  random?: () => number;
}

export interface AttemptInput {
  id: string;
  /** The queue's delivery count (SQS ApproximateReceiveCount): drives the back-off and the attempt limit. */
  receiveCount: number;
  /** Identifies this delivery of the message in the lease. */
  owner: string;
  /** How long the lease holds: longer than this attempt can possibly run (the Lambda's remaining time). */
  leaseMs: number;
  /** Builds the message from the ledger entry (its Message-ID and date stay the same on every attempt).
   * Called before the claim, so a message that cannot be built never takes a lease. */
  prepare: (record: StatusRecord) => PreparedMessage;
}

export type AttemptResult =
  /** Nothing more to do for this queue message: delete it. */
  | {
      kind: 'done';
      state: MessageState;
      attempt?: number;
      results?: Map<string, RecipientResult>;
      transactionMs?: number[];
      reason?: string;
      /** The attempt ran and its outcome is in the ledger, but its transcript could not be stored. */
      transcriptError?: string;
    }
  /** Try again after `delaySeconds` (keep the queue message, hide it that long). */
  | {
      kind: 'retry';
      delaySeconds: number;
      why: 'deferred' | 'leased' | 'conflict';
      attempt?: number;
      results?: Map<string, RecipientResult>;
      transactionMs?: number[];
      transcriptError?: string;
    }
  /** No ledger entry for this id. */
  | { kind: 'missing' };

/** Writes after the attempt that lose a race are re-read and merged this many times. */
const OUTCOME_WRITE_TRIES = 3;

export async function runAttempt(deps: AttemptDeps, input: AttemptInput): Promise<AttemptResult> {
  const now = deps.now ?? (() => new Date());
  const loaded = await deps.status.get(input.id);
  if (!loaded) return { kind: 'missing' };
  const record = loaded.value;
  if (isFinal(record)) return { kind: 'done', state: record.state, reason: 'already final' };
  const started = now();
  if (leaseHeldByOther(record, input.owner, started)) {
    return { kind: 'retry', why: 'leased', delaySeconds: leaseDelaySeconds(record, started) };
  }
  if (pendingAddresses(record).length === 0) {
    // Every recipient is settled but the message state was not (a worker stopped between writes): settle it.
    const at = now();
    const settled = await writeOutcome(deps, loaded, (recipients) => [...recipients], {}, at);
    // A delivery that took a lease meanwhile settles it itself; until then this queue message stays.
    if (!isFinal(settled))
      return { kind: 'retry', why: 'leased', delaySeconds: leaseDelaySeconds(settled, at) };
    return { kind: 'done', state: settled.state, reason: 'nothing left to send' };
  }

  const message = input.prepare(record);
  let claimed: { value: StatusRecord; version: string };
  try {
    claimed = await deps.status.update(
      claim(record, input.owner, started, new Date(started.getTime() + input.leaseMs)),
      loaded.version,
    );
  } catch (error) {
    if (!(error instanceof VersionConflictError)) throw error;
    return {
      kind: 'retry',
      why: 'conflict',
      delaySeconds: backoffSeconds(input.receiveCount, deps.retry, deps.random),
    };
  }
  const attempt = claimed.value.attempts;
  const addresses = pendingAddresses(claimed.value);

  const transcript = deps.createTranscript();
  transcript.add(
    '*',
    `delivery attempt ${attempt} of message ${input.id} to ${addresses.length} recipient(s)`,
  );
  deps.session.attach(transcript);
  const report = await deliver(deps.session, { ...message, addresses });
  // The results are facts about what the relay said and must reach the ledger even if the transcript
  // cannot be stored; otherwise the lease runs out and the delivered recipients are sent to again.
  let transcriptKey: string | undefined;
  let transcriptError: string | undefined;
  try {
    transcriptKey = await deps.transcripts.put(input.id, attempt, transcript.toString());
  } catch (error) {
    transcriptError = `storing the transcript of attempt ${attempt} failed: ${(error as Error).message}`;
  }

  const finished = now();
  const afterAttempt = applyResults(claimed.value.recipients, report.results, finished);
  let decision: ReturnType<typeof decideRetry> | undefined;
  if (afterAttempt.some((r) => r.state === 'deferred' || r.state === 'queued')) {
    const createdAt = new Date(claimed.value.createdAt);
    decision = decideRetry(input.receiveCount, createdAt, finished, deps.retry, deps.random);
  }
  const gaveUp = decision?.retry === false ? decision.reason : undefined;
  // From any version of the ledger (the claimed one, or a newer one after a lost race): this attempt's
  // results, and the give-up if the limits were reached.
  const settle = (recipients: readonly RecipientRecord[]) => {
    const applied = applyResults(recipients, report.results, finished);
    return gaveUp ? giveUp(applied, gaveUp, finished) : applied;
  };
  const nextAttemptAt = decision?.retry
    ? new Date(finished.getTime() + decision.delaySeconds * 1000)
    : undefined;
  const written = await writeOutcome(
    deps,
    claimed,
    settle,
    { transcriptKey, nextAttemptAt, error: gaveUp },
    finished,
  );
  const common = {
    attempt,
    results: report.results,
    transactionMs: report.transactionMs,
    ...(transcriptError ? { transcriptError } : {}),
  };
  if (isFinal(written)) return { kind: 'done', state: written.state, reason: gaveUp, ...common };
  // Not final: the queue message must stay. A live lease another delivery took meanwhile ('sending') is
  // waited out; a deferred message waits its back-off.
  if (written.state === 'sending')
    return { kind: 'retry', why: 'leased', delaySeconds: leaseDelaySeconds(written, finished), ...common };
  const delaySeconds = decision?.retry
    ? decision.delaySeconds
    : backoffSeconds(input.receiveCount, deps.retry, deps.random);
  return { kind: 'retry', why: 'deferred', delaySeconds, ...common };
}

/** Until a lease another delivery holds runs out (at least 1 s, at most what SQS can hide a record for). */
function leaseDelaySeconds(record: StatusRecord, now: Date): number {
  const leftMs = Date.parse(record.lease?.until ?? '') - now.getTime();
  if (!Number.isFinite(leftMs)) return 1;
  return Math.min(MAX_DEFERRAL_SECONDS, Math.max(1, Math.ceil(leftMs / 1000)));
}

/**
 * Writes the attempt's outcome on the version it read. If another writer got in between (only possible
 * once the lease ran out), the latest record is re-read and this attempt's results merged into it:
 * results are facts about what the server said, and a recipient already final keeps its state.
 */
async function writeOutcome(
  deps: AttemptDeps,
  read: Versioned<StatusRecord>,
  settle: (recipients: readonly RecipientRecord[]) => RecipientRecord[],
  summary: Omit<AttemptSummary, 'recipients'>,
  at: Date,
): Promise<StatusRecord> {
  const owner = read.value.lease?.owner ?? '';
  let current = read;
  for (let tries = 1; ; tries++) {
    let next = finishAttempt(current.value, { ...summary, recipients: settle(current.value.recipients) }, at);
    // A live lease someone else took meanwhile stays theirs: they are sending right now.
    if (leaseHeldByOther(current.value, owner, at))
      next = { ...next, state: 'sending', lease: current.value.lease };
    try {
      return (await deps.status.update(next, current.version)).value;
    } catch (error) {
      if (!(error instanceof VersionConflictError) || tries >= OUTCOME_WRITE_TRIES) throw error;
      const latest = await deps.status.get(read.value.id);
      if (!latest) throw error;
      current = latest;
    }
  }
}
