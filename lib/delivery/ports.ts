// What lib/delivery needs from the outside world. lib/aws implements these against S3/SQS;
// tests of the domain may use in-memory implementations.
import type { Reply } from '../smtp/types.ts';

/** Lifecycle of one message. partially_sent: final, some recipients delivered and some failed. */
export type MessageState = 'queued' | 'sending' | 'deferred' | 'sent' | 'partially_sent' | 'failed';

/** Lifecycle of one recipient. Only 'queued' and 'deferred' recipients are ever addressed again. */
export type RecipientState = 'queued' | 'delivered' | 'deferred' | 'failed';

export interface RecipientRecord {
  address: string;
  kind: 'to' | 'cc' | 'bcc';
  state: RecipientState;
  /** The reply (or the error, as text) that decided the current state. */
  reply?: Reply;
  error?: string;
  updatedAt: string;
}

/** The status ledger entry, S3 `messages/<id>.json`: the source of truth for each recipient. */
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
  /** An in-flight delivery: who holds it and until when. Another worker that sees a live lease backs off. */
  lease?: { owner: string; until: string };
  /** S3 keys of the transcripts, one per attempt. */
  transcripts: string[];
  /** Why the message failed as a whole (malformed record, expired, …). */
  error?: string;
  idempotencyKey?: string;
  /** SHA-256 of the submitted body (canonical JSON), set with idempotencyKey: a reuse of the key with another body is refused. */
  requestFingerprint?: string;
  tags?: Record<string, string>;
}

export interface Versioned<T> {
  value: T;
  /** Opaque version (the S3 ETag) for a conditional update. */
  version: string;
}

/** Thrown by a conditional write that lost a race. */
export class VersionConflictError extends Error {
  readonly code = 'VERSION_CONFLICT';
}

export interface StatusStore {
  /** Creates the record; fails with VersionConflictError if it exists. */
  create(record: StatusRecord): Promise<Versioned<StatusRecord>>;
  get(id: string): Promise<Versioned<StatusRecord> | undefined>;
  /** Replaces the record only if it is still at `version`; VersionConflictError otherwise. */
  update(record: StatusRecord, version: string): Promise<Versioned<StatusRecord>>;
}

export interface TranscriptStore {
  /** Stores `transcripts/<id>/<attempt>.log`; returns the key. */
  put(id: string, attempt: number, text: string): Promise<string>;
  get(id: string, attempt?: number): Promise<string | undefined>;
}
