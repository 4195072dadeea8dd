// The events of the ledger: what changed between two committed versions of a status record, as the events
// event-driven apps subscribe to. Pure: the stream consumer (functions/events) feeds it the old and the new
// image of each committed write, in commit order, and publishes what comes out; a redelivered stream record
// gives the same events with the same ids. Schemas: functions/events/schemas/, examples in its README.
import { createHash } from 'node:crypto';
import type { Reply } from '../smtp/types.ts';
import type { MessageState, RecipientRecord, StatusRecord } from './ports.ts';

export const EVENT_TYPES = [
  'message.queued',
  'message.scheduled',
  'message.cancelled',
  'message.sent',
  'message.partially_sent',
  'message.failed',
  'recipient.delivered',
  'recipient.deferred',
  'recipient.failed',
  'recipient.suppressed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The SMTP reply that decided a recipient's state, as events carry it. */
export interface EventReply {
  code: number;
  enhancedCode?: string;
  text: string;
}

export interface EventData {
  /** The smtpq message id (as in /v1/messages/{id}). */
  messageId: string;
  /** The ledger version this change committed: a message's events are in the order of their sequence
   *  (and, within one sequence, in the order published: recipients before the message). */
  sequence: number;
  /** The message's state after the change. */
  state: MessageState;
  tags: Record<string, string>;
  /** The attempt the change came from (0: none yet). */
  attempt: number;
  /** recipient.* only. */
  recipient?: string;
  reply?: EventReply;
  /** Why, when no reply says it (a connection lost, given up after the retry limit, …). */
  error?: string;
  /** recipient.deferred: when the next attempt is due. */
  nextAttemptAt?: string;
  /** The API path of the attempt's transcript, once an attempt ran. */
  transcript?: string;
  /** message.scheduled: when it is due. */
  sendAt?: string;
}

/** One event: the body a webhook receives is `{ type, timestamp, data }`; `id` is its webhook-id. */
export interface SmtpqEvent {
  /** Stable: the same change always has the same id (for de-duplication downstream). */
  id: string;
  type: EventType;
  /** When the change happened (the record's updatedAt), ISO 8601. */
  timestamp: string;
  data: EventData;
}

/** A committed write of the ledger: the record before (absent for a new one) and after, with its version. */
export interface LedgerChange {
  before?: StatusRecord;
  after: StatusRecord;
  version: number;
}

/** The states a message announces when it enters them (after its creation). */
const FINAL_TYPES: Partial<Record<MessageState, EventType>> = {
  sent: 'message.sent',
  partially_sent: 'message.partially_sent',
  failed: 'message.failed',
  cancelled: 'message.cancelled',
};

const RECIPIENT_TYPES: Partial<Record<RecipientRecord['state'], EventType>> = {
  delivered: 'recipient.delivered',
  deferred: 'recipient.deferred',
  failed: 'recipient.failed',
  suppressed: 'recipient.suppressed',
};

/**
 * The events of one change. A claim (→ sending) and a claim given back change no state anyone subscribes to
 * and give none; a recipient deferred again (a new attempt, a new updatedAt) gives a new recipient.deferred.
 */
export function eventsOf(change: LedgerChange): SmtpqEvent[] {
  const { before, after, version } = change;
  const events: SmtpqEvent[] = [];
  const base = {
    messageId: after.id,
    sequence: version,
    state: after.state,
    tags: after.tags ?? {},
    attempt: after.attempts,
    ...(transcriptPath(after) ? { transcript: transcriptPath(after) } : {}),
  };
  const add = (type: EventType, timestamp: string, data: Partial<EventData> = {}) =>
    events.push({
      id: eventId(after.id, version, type, data.recipient),
      type,
      timestamp,
      data: { ...base, ...data },
    });

  if (!before) {
    if (after.state === 'scheduled') add('message.scheduled', after.createdAt, { sendAt: after.sendAt });
    else add('message.queued', after.createdAt);
  }
  const earlier = new Map((before?.recipients ?? []).map((r) => [r.address, r]));
  for (const r of after.recipients) {
    const type = RECIPIENT_TYPES[r.state];
    const was = earlier.get(r.address);
    if (!type || (was && was.state === r.state && was.updatedAt === r.updatedAt)) continue;
    add(type, r.updatedAt, {
      recipient: r.address,
      ...(r.reply ? { reply: eventReply(r.reply) } : {}),
      ...(r.error ? { error: r.error } : {}),
      ...(r.state === 'deferred' && after.nextAttemptAt ? { nextAttemptAt: after.nextAttemptAt } : {}),
    });
  }
  const final = FINAL_TYPES[after.state];
  if (final && before?.state !== after.state)
    add(final, after.updatedAt, after.error ? { error: after.error } : {});
  return events;
}

function eventReply(reply: Reply): EventReply {
  return {
    code: reply.code,
    ...(reply.enhanced ? { enhancedCode: reply.enhanced } : {}),
    text: reply.lines.join('\n'),
  };
}

function transcriptPath(record: StatusRecord): string | undefined {
  const attempt = record.attempts;
  if (!record.transcripts.some((t) => t.attempt === attempt)) return undefined;
  return `/v1/messages/${record.id}/transcript?attempt=${attempt}`;
}

/** `evt_` + 32 hex digits of SHA-256 over what identifies the change: message, version, type, recipient. */
function eventId(messageId: string, version: number, type: EventType, recipient = ''): string {
  const digest = createHash('sha256').update(`${messageId}\n${version}\n${type}\n${recipient}`).digest('hex');
  return `evt_${digest.slice(0, 32)}`;
}
