// POST /v1/messages/batch: up to 100 send requests, each validated and accepted on its own.
// The answer is 202 whenever the envelope is valid, with one result per item in request order (the
// per-item semantics of a 207 Multi-Status, without WebDAV's XML):
//   { id, status: 'queued' | 'scheduled' }                     accepted and on the queue
//   { error: { code: 'validation_failed', issues } }           rejected, nothing stored
//   { error: { code: 'sender_not_allowed', message } }         the deployment does not allow this From
//   { error: { code: 'payload_too_large' | 'internal_error' | 'enqueue_failed', message } }
//       too big; could not be stored; SQS refused it even after the producer's retries — nothing is queued,
//       the item may be sent again.
// Nothing is dropped silently. Idempotency-Key is refused here (400): one key cannot stand for 100 messages.
// As in submit.ts, the queue comes first and the status records after (BatchWriteItem, 25 per call): an
// item on the queue always gets its record, from here or from the worker.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { SendResult } from '../../lib/aws/queue-producer.ts';
import { type Accepted, isFinal, newRecord } from '../../lib/delivery/ledger.ts';
import { type QueueMessage, toQueueMessage } from '../../lib/delivery/queue-message.ts';
import { decodedSize, sendAtProblem, validateSendRequest } from '../../lib/message/schema.ts';
import { type Caller, senderNotAllowed } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { newMessageId } from './ids.ts';
import { header, readJsonBody } from './request-body.ts';
import { type ApiResponse, type Issue, json, problem } from './responses.ts';
import { rawBodyLimit, UNSUBSCRIBE_NOT_CONFIGURED } from './submit.ts';
import { applySuppressions } from './suppressed.ts';

export const MAX_BATCH_SIZE = 100;
/** Claim-check uploads at once: the whole batch in one round of parallel calls. */
const UPLOAD_CONCURRENCY = MAX_BATCH_SIZE;

export type BatchItemResult =
  | { id: string; status: 'queued' | 'scheduled' | 'failed' }
  | { error: { code: 'validation_failed'; issues: Issue[] } }
  | {
      error: {
        code: 'payload_too_large' | 'internal_error' | 'enqueue_failed' | 'sender_not_allowed';
        message: string;
      };
    };

/** An item that passed validation, and what became of it on its way to the queue. */
interface Candidate {
  index: number;
  accepted: Accepted;
  message?: QueueMessage;
}

export async function handleBatch(
  event: APIGatewayProxyEventV2,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const { config, logger } = deps;
  if (header(event, 'idempotency-key') !== undefined) {
    return problem('bad_request', 'Idempotency-Key is supported on POST /v1/messages only, not on batches');
  }
  const body = readJsonBody(event, rawBodyLimit(config.maxMessageBytes));
  if (!body.ok) return body.response;
  const envelope = readEnvelope(body.value);
  if (!envelope.ok)
    return problem('validation_failed', 'the batch envelope is invalid', { issues: envelope.issues });

  const now = deps.now?.() ?? new Date();
  const results = new Array<BatchItemResult>(envelope.messages.length);
  const candidates: Candidate[] = [];
  envelope.messages.forEach((input, index) => {
    const validation = validateSendRequest(input);
    if (!validation.ok) {
      results[index] = { error: { code: 'validation_failed', issues: validation.issues } };
      return;
    }
    const refused = senderNotAllowed(validation.value, config.allowedFromDomains);
    if (refused) {
      const message = `sending as ${refused} is not allowed (ALLOWED_FROM_DOMAINS)`;
      results[index] = { error: { code: 'sender_not_allowed', message } };
      return;
    }
    const scheduleProblem = sendAtProblem(validation.value.sendAt, now);
    const unsubscribeProblem =
      validation.value.unsubscribe && !deps.unsubscribeKey ? UNSUBSCRIBE_NOT_CONFIGURED : undefined;
    if (scheduleProblem || unsubscribeProblem) {
      const issues = scheduleProblem
        ? [{ path: 'sendAt', message: scheduleProblem }]
        : [{ path: 'unsubscribe', message: unsubscribeProblem! }];
      results[index] = { error: { code: 'validation_failed', issues } };
      return;
    }
    const size = decodedSize(validation.value);
    if (size > config.maxMessageBytes) {
      const message = `the message is ${size} bytes decoded; the limit is ${config.maxMessageBytes}`;
      results[index] = { error: { code: 'payload_too_large', message } };
      return;
    }
    const id = deps.newId?.() ?? newMessageId(now.getTime());
    candidates.push({
      index,
      accepted: newRecord(validation.value, id, now, { messageIdDomain: config.messageIdDomain, caller }),
    });
  });

  // Items whose every recipient is suppressed are final already: recorded, never queued.
  await applySuppressions(
    deps,
    candidates.map((item) => item.accepted),
    now,
  );
  const settled = candidates.filter((item) => isFinal(item.accepted.record));
  for (const item of settled) results[item.index] = { id: item.accepted.id, status: 'failed' };
  const toQueue = candidates.filter((item) => !isFinal(item.accepted.record));

  // The queue messages (a large request goes to S3 first: claim check), then the queue, then the ledger.
  await forEachLimit(toQueue, UPLOAD_CONCURRENCY, async (item) => {
    const { id, record, stored } = item.accepted;
    try {
      item.message = await toQueueMessage(id, record, stored, deps.payloads);
    } catch (error) {
      logger.error('batch item not stored', { messageId: id, error });
      results[item.index] = {
        error: { code: 'internal_error', message: 'the item could not be stored; retry it' },
      };
    }
  });

  const ready = toQueue.filter((item) => item.message !== undefined);
  const sent = await sendAll(deps, ready);
  const queued: Candidate[] = [];
  for (const [n, item] of ready.entries()) {
    const outcome = sent[n];
    if (outcome?.ok) {
      results[item.index] = {
        id: item.accepted.id,
        status: item.accepted.record.state as 'queued' | 'scheduled',
      };
      queued.push(item);
      continue;
    }
    const reason = outcome ? `${outcome.code}: ${outcome.error}` : 'no result from the queue producer';
    logger.error('batch item not enqueued', { messageId: item.accepted.id, reason });
    results[item.index] = {
      error: { code: 'enqueue_failed', message: `the item could not be queued (${reason}); retry it` },
    };
  }
  // Fresh ids, so 25 records per call without a condition; one the store could not write is on the queue
  // all the same, and the worker writes it from the queue message once the grace period is over.
  const unwritten = await deps.status
    .createMany([...queued, ...settled].map((item) => item.accepted.record))
    .catch((error: unknown) => [...queued, ...settled].map((item) => ({ id: item.accepted.id, error })));
  const unqueued = new Set(settled.map((item) => item.accepted.id));
  for (const { id, error } of unwritten) {
    if (!unqueued.has(id)) {
      logger.error('status record not written; the worker will write it', { messageId: id, error });
      continue;
    }
    // Nothing else would write it: the item is answered as not stored, to be sent again.
    logger.error('status record of a suppressed message not written', { messageId: id, error });
    const index = settled.find((item) => item.accepted.id === id)!.index;
    results[index] = { error: { code: 'internal_error', message: 'the item could not be stored; retry it' } };
  }

  logger.info('batch processed', { items: results.length, queued: queued.length });
  const rejected = results.filter((result) => 'error' in result).length;
  return json(202, { results, queued: queued.length, rejected });
}

/** Per-item outcomes; a producer that throws fails every item with its error rather than losing them. */
async function sendAll(deps: ApiDeps, ready: Candidate[]): Promise<SendResult[]> {
  if (ready.length === 0) return [];
  try {
    return await deps.queue.sendBatch(ready.map((item) => item.message!));
  } catch (error) {
    const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
    return ready.map(() => ({ ok: false, code: name, error: message }));
  }
}

type Envelope = { ok: true; messages: unknown[] } | { ok: false; issues: Issue[] };

export function readEnvelope(value: unknown): Envelope {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, issues: [{ path: '', message: 'expected an object { "messages": [...] }' }] };
  }
  const unknownFields = Object.keys(value).filter((k) => k !== 'messages');
  if (unknownFields.length > 0) {
    return { ok: false, issues: unknownFields.map((k) => ({ path: k, message: 'unknown field' })) };
  }
  const messages = (value as { messages?: unknown }).messages;
  if (!Array.isArray(messages))
    return { ok: false, issues: [{ path: 'messages', message: 'expected an array' }] };
  if (messages.length === 0 || messages.length > MAX_BATCH_SIZE) {
    const message = `expected 1 to ${MAX_BATCH_SIZE} messages, got ${messages.length}`;
    return { ok: false, issues: [{ path: 'messages', message }] };
  }
  return { ok: true, messages };
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
