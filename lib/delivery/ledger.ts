// Pure transitions of the status ledger (one DynamoDB item per message). The store applies them with
// conditional writes; these functions only compute the next record.

import type { SendRequest } from '../message/schema.ts';
import type { RecipientResult } from './outcome.ts';
import type { MessageState, RecipientRecord, RecipientState, StatusRecord, TranscriptRef } from './ports.ts';
import { type SuppressionEntry, suppressedError } from './suppression.ts';

/**
 * The start of the life cycle: an accepted request gets its Message-ID and Date fixed once (storing them with
 * the request makes every retry compose the identical message) and its initial status record.
 */
export interface Accepted {
  id: string;
  /** The request as it goes on the queue. */
  stored: SendRequest;
  record: StatusRecord;
}

export interface AcceptOptions {
  messageIdDomain: string;
  /** Who submitted it (the API's IAM caller). */
  caller?: StatusRecord['caller'];
  idempotencyKey?: string;
  requestFingerprint?: string;
}

export function newRecord(request: SendRequest, id: string, now: Date, options: AcceptOptions): Accepted {
  const at = now.toISOString();
  // A caller's own Message-ID and Date are kept (validated by lib/message); otherwise they are fixed here.
  const stored: SendRequest = {
    ...request,
    messageId: request.messageId ?? `<${id}@${options.messageIdDomain}>`,
    date: request.date ?? at,
  };
  const recipients: RecipientRecord[] = (['to', 'cc', 'bcc'] as const).flatMap((kind) =>
    request[kind].map((mailbox) => ({
      address: mailbox.address,
      kind,
      state: 'queued' as const,
      updatedAt: at,
    })),
  );
  const record: StatusRecord = {
    id,
    state: request.sendAt === undefined ? 'queued' : 'scheduled',
    createdAt: at,
    updatedAt: at,
    messageId: stored.messageId!,
    ...(request.subject !== undefined ? { subject: request.subject } : {}),
    from: request.from.address,
    recipients,
    attempts: 0,
    transcripts: [],
    ...(request.sendAt !== undefined ? { sendAt: request.sendAt } : {}),
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    ...(options.requestFingerprint !== undefined ? { requestFingerprint: options.requestFingerprint } : {}),
    ...(Object.keys(request.tags).length > 0 ? { tags: request.tags } : {}),
    ...(options.caller ? { caller: options.caller } : {}),
  };
  return { id, stored, record };
}

const FINAL_MESSAGE_STATES: ReadonlySet<MessageState> = new Set([
  'sent',
  'partially_sent',
  'failed',
  'cancelled',
]);
/** The states POST /v1/messages/{id}/cancel accepts: nothing is being sent, and something is left to send. */
const CANCELLABLE_STATES: ReadonlySet<MessageState> = new Set(['queued', 'scheduled', 'deferred']);
const OPEN_RECIPIENT_STATES: ReadonlySet<RecipientState> = new Set(['queued', 'deferred']);

export function isFinal(record: StatusRecord): boolean {
  return FINAL_MESSAGE_STATES.has(record.state);
}

function isOpen(recipient: RecipientRecord): boolean {
  return OPEN_RECIPIENT_STATES.has(recipient.state);
}

/** A scheduled message not due yet: the milliseconds until its `sendAt`, else 0. */
export function msUntilDue(record: Pick<StatusRecord, 'sendAt'>, now: Date): number {
  return record.sendAt === undefined ? 0 : Math.max(0, Date.parse(record.sendAt) - now.getTime());
}

/**
 * Whether the message can be cancelled now: queued, scheduled or deferred, and not held by a live lease (a
 * worker may be sending it: its outcome write would lose to the cancel, but the relay has the message).
 */
export function isCancellable(record: StatusRecord, now: Date): boolean {
  const leased = record.lease !== undefined && Date.parse(record.lease.until) > now.getTime();
  return CANCELLABLE_STATES.has(record.state) && !leased;
}

/** The record after a cancel: every recipient not yet settled is cancelled, and so is the message. */
export function cancel(record: StatusRecord, now: Date): StatusRecord {
  const at = now.toISOString();
  return {
    ...record,
    state: 'cancelled',
    recipients: record.recipients.map((r) =>
      isOpen(r) ? { ...r, state: 'cancelled' as const, updatedAt: at } : r,
    ),
    nextAttemptAt: undefined,
    lease: undefined,
    updatedAt: at,
  };
}

/**
 * The record with every open recipient on the suppression list (`matches`, by address) suppressed; the same
 * record when none is. A message left with no open recipient is settled (failed when none was delivered).
 */
export function suppress(
  record: StatusRecord,
  matches: ReadonlyMap<string, SuppressionEntry>,
  now: Date,
): StatusRecord {
  if (!record.recipients.some((r) => isOpen(r) && matches.has(r.address))) return record;
  const at = now.toISOString();
  const recipients = record.recipients.map((r) => {
    const entry = matches.get(r.address);
    return entry && isOpen(r)
      ? { ...r, state: 'suppressed' as const, error: suppressedError(entry), updatedAt: at }
      : r;
  });
  const open = recipients.some(isOpen);
  return {
    ...record,
    recipients,
    // Still waiting (queued, scheduled, deferred) while anyone is left; settled otherwise.
    state: open ? record.state : overallState(recipients),
    ...(open ? {} : { nextAttemptAt: undefined, lease: undefined }),
    updatedAt: at,
  };
}

/** The addresses still to be tried, each once (an address may appear as to and cc). */
export function pendingAddresses(record: StatusRecord): string[] {
  return [...new Set(record.recipients.filter(isOpen).map((r) => r.address))];
}

/** A lease another worker holds and that has not run out: that worker may be sending right now. */
export function leaseHeldByOther(record: StatusRecord, owner: string, now: Date): boolean {
  const lease = record.lease;
  return lease !== undefined && lease.owner !== owner && Date.parse(lease.until) > now.getTime();
}

/** The whole message's state from its recipients'. */
export function overallState(recipients: readonly RecipientRecord[]): MessageState {
  if (recipients.length === 0) return 'failed';
  if (recipients.some(isOpen)) return 'deferred';
  const delivered = recipients.filter((r) => r.state === 'delivered').length;
  if (delivered === recipients.length) return 'sent';
  return delivered === 0 ? 'failed' : 'partially_sent';
}

/** The claim written (If-Match) before any SMTP command: this worker holds the message until `leaseUntil`. */
export function claim(record: StatusRecord, owner: string, now: Date, leaseUntil: Date): StatusRecord {
  return {
    ...record,
    state: 'sending',
    attempts: record.attempts + 1,
    lease: { owner, until: leaseUntil.toISOString() },
    nextAttemptAt: undefined,
    updatedAt: now.toISOString(),
  };
}

/**
 * A claim given back unused (the relay's limit or a pause left no time to send the message): the record as it
 * was before the claim, on the claim's version — no attempt counted, no lease held.
 */
export function releaseClaim(before: StatusRecord, now: Date): StatusRecord {
  return { ...before, lease: undefined, updatedAt: now.toISOString() };
}

/**
 * The recipients after an attempt: each addressed one takes its result; a recipient already final
 * (delivered or failed, perhaps by a concurrent worker) keeps its state, so a merge never un-delivers.
 */
export function applyResults(
  recipients: readonly RecipientRecord[],
  results: ReadonlyMap<string, RecipientResult>,
  now: Date,
): RecipientRecord[] {
  return recipients.map((r) => {
    const result = results.get(r.address);
    if (!result || !isOpen(r)) return r;
    return {
      ...r,
      state: result.state,
      reply: result.reply,
      error: 'error' in result ? result.error : undefined,
      updatedAt: now.toISOString(),
    };
  });
}

/** Past the retry limits: every open recipient fails, keeping the last reply that deferred it. */
export function giveUp(recipients: readonly RecipientRecord[], reason: string, now: Date): RecipientRecord[] {
  return recipients.map((r) =>
    isOpen(r)
      ? {
          ...r,
          state: 'failed',
          error: r.error ? `${reason}; last: ${r.error}` : reason,
          updatedAt: now.toISOString(),
        }
      : r,
  );
}

export interface AttemptSummary {
  recipients: RecipientRecord[];
  /** Where this attempt's lines are (one part per connection it used). */
  transcripts?: readonly TranscriptRef[];
  /** When the message is due again, if it stays deferred. */
  nextAttemptAt?: Date;
  /** Why the message failed as a whole, if it did. */
  error?: string;
}

/** The record written (If-Match on the claim's version) when the attempt is over: the lease is released. */
export function finishAttempt(claimed: StatusRecord, summary: AttemptSummary, now: Date): StatusRecord {
  const state = overallState(summary.recipients);
  const known = new Set(claimed.transcripts.map((t) => `${t.attempt} ${t.key}`));
  const transcripts = [
    ...claimed.transcripts,
    ...(summary.transcripts ?? []).filter((t) => !known.has(`${t.attempt} ${t.key}`)),
  ];
  return {
    ...claimed,
    state,
    recipients: summary.recipients,
    transcripts,
    lease: undefined,
    nextAttemptAt: state === 'deferred' ? summary.nextAttemptAt?.toISOString() : undefined,
    error: summary.error ?? claimed.error,
    updatedAt: now.toISOString(),
  };
}

/** A message that cannot be delivered at all (malformed request, missing payload): every open recipient fails. */
export function failMessage(record: StatusRecord, reason: string, now: Date): StatusRecord {
  const recipients = record.recipients.map((r) =>
    isOpen(r) ? { ...r, state: 'failed' as const, error: reason, updatedAt: now.toISOString() } : r,
  );
  return {
    ...record,
    recipients,
    state: overallState(recipients),
    lease: undefined,
    error: reason,
    updatedAt: now.toISOString(),
  };
}
