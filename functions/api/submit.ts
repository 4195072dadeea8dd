// POST /v1/messages: validate, claim the Idempotency-Key, enqueue, write the status record, answer 202.
//
// The queue first: the queue message carries the initial status record, so if this function dies (or the
// ledger write fails) after the enqueue, the worker writes the record itself and delivers the message — a
// message is never left `queued` with nothing on the queue (the gap of writing the ledger first).
//
// Idempotency (IETF draft-ietf-httpapi-idempotency-key-header, Stripe's behaviour): the first request with a
// key claims it with a conditional DynamoDB write; a retry within 24 h, or the loser of a race, gets the same id
// and nothing is enqueued again. The same key with a different body is refused with 422 (the draft's code:
// the request is well-formed but conflicts with the key's original request). The comparison uses the
// fingerprint stored in the claim itself, so it holds for the loser of a race too, before the winner has
// written its status record; claims made before the claim carried it fall back to the status record's.
// An id is handed out only once its status record exists: a loser waits briefly for the winner's record
// and otherwise answers 409 (retry), never an id that a failed claimant may leave without a message.
// A claim left by a request that died before enqueueing is taken over after ABANDONED_CLAIM_MS.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { IdempotencyContentionError } from '../../lib/aws/idempotency-store.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord, Versioned } from '../../lib/delivery/ports.ts';
import { toQueueMessage } from '../../lib/delivery/queue-message.ts';
import { decodedSize, validateSendRequest } from '../../lib/message/schema.ts';
import type { ApiDeps } from './deps.ts';
import { requestFingerprint } from './fingerprint.ts';
import { readIdempotencyKey } from './idempotency-key.ts';
import { newMessageId } from './ids.ts';
import { readJsonBody } from './request-body.ts';
import { type ApiResponse, json, problem } from './responses.ts';

/**
 * The raw JSON may be larger than the decoded message: base64 attachments grow by 4/3 and JSON escapes add
 * more. Twice the decoded limit (plus room for the envelope) bounds what is parsed at all; the exact
 * decoded-size check follows validation.
 */
export function rawBodyLimit(maxMessageBytes: number): number {
  return 2 * maxMessageBytes + 64 * 1024;
}

export async function handleSubmit(event: APIGatewayProxyEventV2, deps: ApiDeps): Promise<ApiResponse> {
  const { config, logger } = deps;
  const keyResult = readIdempotencyKey(event);
  if (!keyResult.ok) return problem('invalid_idempotency_key', keyResult.message);
  const body = readJsonBody(event, rawBodyLimit(config.maxMessageBytes));
  if (!body.ok) return body.response;
  const validation = validateSendRequest(body.value);
  if (!validation.ok) {
    return problem('validation_failed', 'the request has invalid fields', { issues: validation.issues });
  }
  const size = decodedSize(validation.value);
  if (size > config.maxMessageBytes) {
    return problem(
      'payload_too_large',
      `the message is ${size} bytes decoded; the limit is ${config.maxMessageBytes}`,
    );
  }

  const now = deps.now?.() ?? new Date();
  const id = deps.newId?.() ?? newMessageId(now.getTime());
  const key = keyResult.key;
  const fingerprint = key === undefined ? undefined : requestFingerprint(body.value);
  if (key !== undefined) {
    const replay = await claimKey(deps, key, id, fingerprint!, now);
    if (replay) return replay;
  }

  const accepted = newRecord(validation.value, id, now, {
    messageIdDomain: config.messageIdDomain,
    idempotencyKey: key,
    requestFingerprint: fingerprint,
  });
  try {
    await deps.queue.send(await toQueueMessage(id, accepted.record, accepted.stored, deps.payloads));
  } catch (error) {
    logger.error('message not enqueued', { messageId: id, error });
    await releaseKey(deps, key, id);
    // Nothing was queued and the key is free again: a retry of the same request is the right move, hence 503.
    return problem('service_unavailable', 'the message could not be queued; retry the request', {
      requestId: event.requestContext?.requestId,
    });
  }
  // In parallel: the record, and the mark that keeps the key's claim from ever being taken over now that
  // the message is on the queue (a backed-up queue may hold it longer than ABANDONED_CLAIM_MS).
  const [created, marked] = await Promise.allSettled([
    deps.status.create(accepted.record),
    key === undefined ? undefined : deps.idempotency.markEnqueued(key, id),
  ]);
  // The message is on the queue and will be delivered; the worker writes its record from the queue message.
  // Answering an error would make the client send it twice.
  if (created.status === 'rejected')
    logger.error('status record not written; the worker will write it', {
      messageId: id,
      error: created.reason,
    });
  if (marked.status === 'rejected')
    logger.error('idempotency claim not marked enqueued', { messageId: id, error: marked.reason });
  logger.info('message queued', {
    messageId: id,
    recipients: accepted.record.recipients.length,
    bytes: size,
  });
  return json(202, { id, status: 'queued' });
}

/**
 * Gives the key back after a submit that enqueued nothing, so the client's retry submits afresh (and gets
 * a new id: the old one's record says failed).
 */
async function releaseKey(deps: ApiDeps, key: string | undefined, id: string): Promise<void> {
  if (key === undefined) return;
  await deps.idempotency
    .release(key, id)
    .catch((error: unknown) => deps.logger.warn('key not released', { error }));
}

/**
 * A claim whose status record still does not exist this long after it was made belongs to a request that
 * died between the claim and the record (15 minutes: the longest a Lambda can run, so the claimant is gone).
 */
export const ABANDONED_CLAIM_MS = 15 * 60 * 1000;

/**
 * Pauses before each further look for the status record of a claim that has none yet (3 s in all). The
 * claimant writes it right after its claim, so a racing request normally finds it at the first or second
 * look; one that never appears belongs to a claimant that failed or died, and its id must not be handed out.
 */
export const RECORD_WAIT_MS = [50, 100, 200, 400, 800, 1500];

/** Claims the key for `id`; undefined when this request won, else the response for a replay or a conflict. */
async function claimKey(
  deps: ApiDeps,
  key: string,
  id: string,
  fingerprint: string,
  now: Date,
  takeOver = true,
): Promise<ApiResponse | undefined> {
  let result: Awaited<ReturnType<ApiDeps['idempotency']['claim']>>;
  try {
    result = await deps.idempotency.claim(key, id, now, fingerprint);
  } catch (error) {
    if (error instanceof IdempotencyContentionError) return keyInUse();
    throw error;
  }
  if (result.claimed) return undefined;
  const original = await deps.status.get(result.id);
  // The key is free again when its request died before enqueueing (no record long after the claim; one that
  // was enqueued gets its record from the worker): replaying that id would lose the request.
  const abandoned =
    !original && !result.enqueued && now.getTime() - Date.parse(result.createdAt) >= ABANDONED_CLAIM_MS;
  if (takeOver && abandoned) {
    // release() deletes only the claim that still names result.id (If-Match), so of two requests taking
    // over at once, one re-claims and the other replays its id.
    deps.logger.warn('taking over an Idempotency-Key whose request was never enqueued', {
      messageId: result.id,
    });
    await deps.idempotency.release(key, result.id);
    return claimKey(deps, key, id, fingerprint, now, false);
  }
  // The claim names its request's fingerprint: a different body is refused whether or not the claimant has
  // written its status record yet (claims from before the claim carried it are compared below).
  if (result.fingerprint !== undefined && result.fingerprint !== fingerprint) return keyReused();
  const record = original ?? (await awaitRecord(deps, result.id));
  // No record yet: the claimant is slow, or failed and could not give the key back. Its id may never
  // exist, so it is not handed out; the client retries (and takes over the key once it is abandoned).
  if (!record) return keyInUse();
  const originalFingerprint = result.fingerprint ?? record.value.requestFingerprint;
  if (originalFingerprint !== undefined && originalFingerprint !== fingerprint) return keyReused();
  deps.logger.info('idempotent replay', { messageId: result.id });
  return json(202, { id: result.id, status: 'queued' }, { 'idempotent-replayed': 'true' });
}

async function awaitRecord(deps: ApiDeps, id: string): Promise<Versioned<StatusRecord> | undefined> {
  for (const pause of RECORD_WAIT_MS) {
    await new Promise((resolve) => setTimeout(resolve, pause));
    const record = await deps.status.get(id);
    if (record) return record;
  }
  return undefined;
}

const keyInUse = (): ApiResponse =>
  problem('idempotency_key_in_use', 'another request with this Idempotency-Key is in progress; retry');

const keyReused = (): ApiResponse =>
  problem('idempotency_key_reused', 'this Idempotency-Key was already used with a different request body');
