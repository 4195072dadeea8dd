// The queue-message contract in one place: its type, its schema, its SQS encoding and its claim check.
// The body of one SQS message is the message's id, its initial status record, and the request — inline when
// it fits an SQS message, else stored in S3 (claim check) with only its key here. The API enqueues it
// *before* it writes the status record: a worker that finds no record (the API died in between, or is simply
// slower) writes it from the queue message, so a message on the queue always gets its ledger entry and
// nothing queued is ever left unsent.
import { z } from 'zod';
import { type SendRequest, validateSendRequest } from '../message/schema.ts';
import type { StatusRecord } from './ports.ts';

export type QueueMessage =
  | { v: 1; id: string; record: StatusRecord; request: unknown }
  | { v: 1; id: string; record: StatusRecord; payloadKey: string };

/**
 * SQS takes messages of up to 1 MiB since August 2025 (256 KiB before); moto 5.2.5, the pinned emulator,
 * enforces the same 1 MiB, so one limit works in both. 64 KiB are kept free as a margin (message
 * attributes count against the limit too). A queue created with the old 256 KiB MaximumMessageSize must be
 * raised to 1048576 for this to hold (infra/template.yaml sets it explicitly).
 */
export const SQS_INLINE_LIMIT_BYTES = 1024 * 1024 - 64 * 1024;

/** SQS delays a message by at most 15 minutes (DelaySeconds). */
export const MAX_QUEUE_DELAY_SECONDS = 900;

/**
 * How long a message waits on the queue before a worker sees it: a scheduled one until its `sendAt`, or for
 * SQS's longest delay, after which the worker puts it back for the next stretch (chained delays; see
 * functions/worker/README.md for why not EventBridge Scheduler).
 */
export function queueDelaySeconds(record: Pick<StatusRecord, 'sendAt'>, now: Date): number {
  if (record.sendAt === undefined) return 0;
  const seconds = Math.ceil((Date.parse(record.sendAt) - now.getTime()) / 1000);
  return Math.min(MAX_QUEUE_DELAY_SECONDS, Math.max(0, seconds));
}

/** Stores a claim-check payload; returns its key. */
export interface PayloadWriter {
  put(id: string, request: unknown): Promise<string>;
}

/** The queue message for one accepted request: the request inline when it fits, else in S3 (claim check). */
export async function toQueueMessage(
  id: string,
  record: StatusRecord,
  request: unknown,
  payloads: PayloadWriter,
): Promise<QueueMessage> {
  const inline: QueueMessage = { v: 1, id, record, request };
  // Measured as the producer will send it: its escapes of characters SQS refuses make the text longer.
  if (Buffer.byteLength(toSqsBody(inline), 'utf8') <= SQS_INLINE_LIMIT_BYTES) return inline;
  return { v: 1, id, record, payloadKey: await payloads.put(id, request) };
}

// With the u flag a valid surrogate pair is one (allowed) code point and a lone surrogate is matched alone.
const outsideSqsCharacters = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

const escapeCharacter = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** The message as JSON text that SQS accepts; JSON.parse gives back the same value. (SQS accepts only the XML
 * characters #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF and refuses a whole message for
 * any other; JSON.stringify writes U+FFFE and U+FFFF as they are, so those are escaped as \\uXXXX.) */
export function toSqsBody(message: QueueMessage): string {
  return JSON.stringify(message).replace(outsideSqsCharacters, escapeCharacter);
}

export class MalformedRecordError extends Error {
  readonly code = 'MALFORMED_RECORD';
  constructor(
    message: string,
    /** The smtpq message id, when the record carried a readable one. */
    readonly id?: string,
  ) {
    super(message);
  }
}

/** Fetches a claim-check payload; undefined when it is gone. Rejects keys outside the payload prefix. */
export interface PayloadReader {
  get(key: string): Promise<unknown>;
}

const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'id must be 1-128 of A-Z a-z 0-9 _ -');
/** The initial status record, as the API built it; the worker writes it when the ledger has none yet. */
const recordSchema = z
  .object({
    id: idSchema,
    state: z.enum(['queued', 'scheduled']),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    messageId: z.string().min(1),
    from: z.string(),
    recipients: z
      .array(
        z
          .object({
            address: z.string().min(1),
            kind: z.enum(['to', 'cc', 'bcc']),
            // Suppressed at submit (functions/api/suppressed.ts): settled, never addressed.
            state: z.enum(['queued', 'suppressed']),
            updatedAt: z.string(),
            error: z.string().optional(),
          })
          .strict(),
      )
      .min(1),
    attempts: z.literal(0),
    transcripts: z.array(z.never()),
    subject: z.string().optional(),
    sendAt: z.iso.datetime().optional(),
    idempotencyKey: z.string().optional(),
    requestFingerprint: z.string().optional(),
    tags: z.record(z.string(), z.string()).optional(),
    caller: z
      .object({ principal: z.string(), accountId: z.string().optional(), accessKey: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict();
const queueMessageSchema = z.union([
  z
    .object({
      v: z.literal(1),
      id: idSchema,
      record: recordSchema,
      request: z.unknown().refine((r) => r !== undefined, 'request is required'),
    })
    .strict(),
  z.object({ v: z.literal(1), id: idSchema, record: recordSchema, payloadKey: z.string().min(1) }).strict(),
]);

export interface QueueRecordContent {
  id: string;
  request: SendRequest;
  /** The initial status record (written by the worker if the ledger has none). */
  record: StatusRecord;
}

/** Errors of the payload store that no retry can fix: the key is refused, or the object is not JSON. */
const PERMANENT_PAYLOAD_ERRORS = new Set(['INVALID_KEY', 'CORRUPT_OBJECT']);

/** An SQS body → the message it carries, validated; MalformedRecordError names what is wrong. */
export async function readQueueMessage(text: string, payloads: PayloadReader): Promise<QueueRecordContent> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MalformedRecordError(`body is not JSON (${text.length} characters)`);
  }
  const parsed = queueMessageSchema.safeParse(body);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
      .join('; ');
    throw new MalformedRecordError(`body is not a queue message: ${problems}`, recoverId(body));
  }
  const message = parsed.data as QueueMessage;
  if (message.record.id !== message.id)
    throw new MalformedRecordError(`record.id ${message.record.id} is not the message id`, message.id);
  const request =
    'payloadKey' in message ? await readPayload(message.id, message.payloadKey, payloads) : message.request;
  const validated = validateSendRequest(request);
  if (!validated.ok) {
    const problems = validated.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    throw new MalformedRecordError(`invalid send request: ${problems}`, message.id);
  }
  return { id: message.id, request: validated.value, record: message.record };
}

async function readPayload(id: string, key: string, payloads: PayloadReader): Promise<unknown> {
  let payload: unknown;
  try {
    payload = await payloads.get(key);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && PERMANENT_PAYLOAD_ERRORS.has(code)) {
      throw new MalformedRecordError(`claim-check payload ${key}: ${(error as Error).message}`, id);
    }
    throw error; // S3 unavailable and the like: the record is fine, try it again later
  }
  if (payload === undefined) throw new MalformedRecordError(`claim-check payload ${key} is missing`, id);
  return payload;
}

/** The id of a body that failed the schema, if it has a well-formed one. */
function recoverId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const id = idSchema.safeParse((body as { id?: unknown }).id);
  return id.success ? id.data : undefined;
}
