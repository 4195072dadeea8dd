// POST /v1/messages: validate, claim the Idempotency-Key, enqueue, write the status record, answer 202.
//
// The queue first: the queue message carries the initial status record, so if this function dies (or the
// ledger write fails) after the enqueue, the worker writes the record itself and delivers the message — a
// message is never left `queued` with nothing on the queue (the gap of writing the ledger first).
//
// Idempotency: the protocol is lib/delivery/idempotency.ts; here its verdicts become answers — a replay is
// 202 with the original id (Idempotent-Replayed: true), a key held by a request without a record yet is 409
// (retry), the same key with a different body 422 (the draft's code: well-formed, but in conflict with the
// key's original request).
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { claimKey } from '../../lib/delivery/idempotency.ts';
import { isFinal, newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { toQueueMessage } from '../../lib/delivery/queue-message.ts';
import { decodedSize, sendAtProblem, validateSendRequest } from '../../lib/message/schema.ts';
import { type Caller, scopedKey, senderNotAllowed } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { requestFingerprint } from './fingerprint.ts';
import { readIdempotencyKey } from './idempotency-key.ts';
import { newMessageId } from './ids.ts';
import { readJsonBody } from './request-body.ts';
import { type ApiResponse, json, problem } from './responses.ts';
import { applySuppressions } from './suppressed.ts';

/**
 * The raw JSON may be larger than the decoded message: base64 attachments grow by 4/3 and JSON escapes add
 * more. Twice the decoded limit (plus room for the envelope) bounds what is parsed at all; the exact
 * decoded-size check follows validation.
 */
export function rawBodyLimit(maxMessageBytes: number): number {
  return 2 * maxMessageBytes + 64 * 1024;
}

export async function handleSubmit(
  event: APIGatewayProxyEventV2,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const { config, logger } = deps;
  const keyResult = readIdempotencyKey(event);
  if (!keyResult.ok) return problem('invalid_idempotency_key', keyResult.message);
  const body = readJsonBody(event, rawBodyLimit(config.maxMessageBytes));
  if (!body.ok) return body.response;
  const validation = validateSendRequest(body.value);
  if (!validation.ok) {
    return problem('validation_failed', 'the request has invalid fields', { issues: validation.issues });
  }
  const refused = senderNotAllowed(validation.value, config.allowedFromDomains);
  if (refused) return notAllowed(refused);
  const now = deps.now?.() ?? new Date();
  const scheduleProblem = sendAtProblem(validation.value.sendAt, now);
  if (scheduleProblem)
    return problem('validation_failed', 'the request has invalid fields', {
      issues: [{ path: 'sendAt', message: scheduleProblem }],
    });
  if (validation.value.unsubscribe && !deps.unsubscribeKey)
    return problem('validation_failed', 'the request has invalid fields', {
      issues: [{ path: 'unsubscribe', message: UNSUBSCRIBE_NOT_CONFIGURED }],
    });
  const size = decodedSize(validation.value);
  if (size > config.maxMessageBytes) {
    return problem(
      'payload_too_large',
      `the message is ${size} bytes decoded; the limit is ${config.maxMessageBytes}`,
    );
  }

  const id = deps.newId?.() ?? newMessageId(now.getTime());
  // The key as stored is the caller's: another caller's same key is another key.
  const key = keyResult.key === undefined ? undefined : scopedKey(caller, keyResult.key);
  const fingerprint = key === undefined ? undefined : requestFingerprint(body.value);
  if (key !== undefined) {
    const answer = await answerForKey(deps, key, id, fingerprint!, now);
    if (answer) return answer;
  }

  const accepted = newRecord(validation.value, id, now, {
    messageIdDomain: config.messageIdDomain,
    idempotencyKey: keyResult.key,
    requestFingerprint: fingerprint,
    caller,
  });
  await applySuppressions(deps, [accepted], now);
  if (isFinal(accepted.record)) return settledAtSubmit(deps, key, accepted.record, event);
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
  return json(202, { id, status: accepted.record.state });
}

/** Every recipient is suppressed: the record is written final, nothing is queued. */
async function settledAtSubmit(
  deps: ApiDeps,
  key: string | undefined,
  record: StatusRecord,
  event: APIGatewayProxyEventV2,
): Promise<ApiResponse> {
  try {
    await deps.status.create(record);
  } catch (error) {
    deps.logger.error('status record not written', { messageId: record.id, error });
    await releaseKey(deps, key, record.id);
    return problem('service_unavailable', 'the message could not be recorded; retry the request', {
      requestId: event.requestContext?.requestId,
    });
  }
  if (key !== undefined)
    await deps.idempotency
      .markEnqueued(key, record.id)
      .catch((error: unknown) => deps.logger.error('idempotency claim not marked', { error }));
  deps.logger.info('every recipient is suppressed: message failed without sending', { messageId: record.id });
  return json(202, { id: record.id, status: record.state });
}

export const UNSUBSCRIBE_NOT_CONFIGURED =
  'one-click unsubscribe is not configured on this deployment (UNSUBSCRIBE_SECRET_ARN)';

/** 403: the deployment does not allow this sender (ALLOWED_FROM_DOMAINS). */
export function notAllowed(address: string): ApiResponse {
  return problem('sender_not_allowed', `sending as ${address} is not allowed (ALLOWED_FROM_DOMAINS)`);
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

/** The key's claim as an answer: undefined when this request holds it and goes on to submit. */
async function answerForKey(
  deps: ApiDeps,
  key: string,
  id: string,
  fingerprint: string,
  now: Date,
): Promise<ApiResponse | undefined> {
  const claim = await claimKey(deps, key, id, fingerprint, now);
  switch (claim.kind) {
    case 'claimed':
      if (claim.tookOver)
        deps.logger.warn('took over an Idempotency-Key whose request was never enqueued', {
          messageId: claim.tookOver,
        });
      return undefined;
    case 'replay':
      deps.logger.info('idempotent replay', { messageId: claim.id });
      return json(202, { id: claim.id, status: 'queued' }, { 'idempotent-replayed': 'true' });
    case 'in_use':
      return problem(
        'idempotency_key_in_use',
        'another request with this Idempotency-Key is in progress; retry',
      );
    case 'reused':
      return problem(
        'idempotency_key_reused',
        'this Idempotency-Key was already used with a different request body',
      );
  }
}
