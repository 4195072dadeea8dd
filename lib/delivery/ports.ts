// What lib/delivery needs from the outside world. lib/aws implements these against DynamoDB, S3 and SQS;
// tests of the domain may use in-memory implementations.
import type { Reply } from '../smtp/types.ts';

/**
 * Lifecycle of one message. scheduled: queued with a `sendAt` still ahead. partially_sent: final, some
 * recipients delivered and some failed. cancelled: final, by POST /v1/messages/{id}/cancel.
 */
export type MessageState =
  | 'queued'
  | 'scheduled'
  | 'sending'
  | 'deferred'
  | 'sent'
  | 'partially_sent'
  | 'failed'
  | 'cancelled';

/**
 * Lifecycle of one recipient. Only 'queued' and 'deferred' recipients are ever addressed again. suppressed:
 * final, on the suppression list when the message was submitted or due (never addressed; `error` says why).
 */
export type RecipientState = 'queued' | 'delivered' | 'deferred' | 'failed' | 'cancelled' | 'suppressed';

export interface RecipientRecord {
  address: string;
  kind: 'to' | 'cc' | 'bcc';
  state: RecipientState;
  /** The reply (or the error, as text) that decided the current state. */
  reply?: Reply;
  error?: string;
  updatedAt: string;
}

/** Where one attempt's lines are: a part of the transcript of the SMTP connection that carried it. */
export interface TranscriptRef {
  attempt: number;
  /** The S3 key of the connection's transcript (one object per connection, shared by its messages). */
  key: string;
  /** This attempt's lines of it, as [first, last] line-number runs (0-based, inclusive): the connection's
   *  own lines (greeting, EHLO, TLS, AUTH) up to this attempt, then the lines of its transaction(s). */
  lines: [number, number][];
}

/** The status ledger entry (a DynamoDB item): the source of truth for each recipient. */
export interface StatusRecord {
  id: string;
  state: MessageState;
  createdAt: string;
  updatedAt: string;
  /** RFC 5322 Message-ID of the composed message (stable across attempts). */
  messageId: string;
  subject?: string;
  from: string;
  recipients: RecipientRecord[];
  /** Number of delivery attempts started. */
  attempts: number;
  /** When a deferred message is due again (ISO). */
  nextAttemptAt?: string;
  /** When a scheduled message is due (ISO, UTC): the request's `sendAt`. */
  sendAt?: string;
  /** An in-flight delivery: who holds it and until when. Another worker that sees a live lease backs off. */
  lease?: { owner: string; until: string };
  /** The transcripts of the attempts, in order. */
  transcripts: TranscriptRef[];
  /** Why the message failed as a whole (malformed record, expired, …). */
  error?: string;
  idempotencyKey?: string;
  /** SHA-256 of the submitted body (canonical JSON), set with idempotencyKey: a reuse of the key with another body is refused. */
  requestFingerprint?: string;
  tags?: Record<string, string>;
  /** Who submitted it: the IAM principal API Gateway authenticated (absent locally, where there is no auth). */
  caller?: { principal: string; accountId?: string; accessKey?: string };
}

export interface Versioned<T> {
  value: T;
  /** Opaque version (the item's version number) for a conditional update. */
  version: string;
}

/** Thrown by a conditional write that lost a race. */
export class VersionConflictError extends Error {
  readonly code = 'VERSION_CONFLICT';
}

export interface StatusStore {
  /** Creates the record; fails with VersionConflictError if it exists. */
  create(record: StatusRecord): Promise<Versioned<StatusRecord>>;
  /**
   * Writes new records many per call and without a condition; returns the ones it could not write. Only for
   * ids no other writer can hold: fresh ones, which the worker leaves to their writer for its grace period.
   */
  createMany(records: readonly StatusRecord[]): Promise<{ id: string; error: unknown }[]>;
  get(id: string): Promise<Versioned<StatusRecord> | undefined>;
  /** Many records in one read (the worker's batch); ids not found are absent from the map. */
  getMany(ids: readonly string[]): Promise<Map<string, Versioned<StatusRecord>>>;
  /** Replaces the record only if it is still at `version`; VersionConflictError otherwise. */
  update(record: StatusRecord, version: string): Promise<Versioned<StatusRecord>>;
}

/** The ledger's listing (the API's GET /v1/messages and the dev inbox; the worker never lists). */
export interface StatusIndex {
  /** Ids of the messages listed under `states`, newest first, a page at a time. */
  listIds(query: ListQuery): Promise<{ ids: string[]; cursor?: string }>;
}

export interface ListQuery {
  /** Index partitions: a message being sent ('sending') stays listed under the state it had. */
  states: readonly MessageState[];
  limit: number;
  /** Created at or after (ISO). */
  since?: string;
  /** Created at or before (ISO). */
  until?: string;
  /** From a previous page: continue below its last entry. */
  cursor?: string;
}

export interface TranscriptStore {
  /** Stores the transcript of one SMTP connection under `key`. */
  put(key: string, text: string): Promise<void>;
  /** One attempt's part of a connection's transcript; undefined when the object is gone. */
  part(ref: TranscriptRef): Promise<string | undefined>;
}
