// An SQS record → the send request it carries (inline, or from S3 through the claim check) and the message's
// initial status record.
// Everything that can be wrong with a record's content ends in MalformedRecordError, with the message id
// when it could be read: the worker then fails the message and lets the queue's redrive take the record.
import type { SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import { type SendRequest, validateSendRequest } from '../../lib/message/schema.ts';

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
    state: z.literal('queued'),
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
            state: z.literal('queued'),
            updatedAt: z.string(),
          })
          .strict(),
      )
      .min(1),
    attempts: z.literal(0),
    transcripts: z.array(z.never()),
    subject: z.string().optional(),
    idempotencyKey: z.string().optional(),
    requestFingerprint: z.string().optional(),
    tags: z.record(z.string(), z.string()).optional(),
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

export async function readQueueRecord(
  record: SQSRecord,
  payloads: PayloadReader,
): Promise<QueueRecordContent> {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    throw new MalformedRecordError(`body is not JSON (${record.body.length} characters)`);
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
