// The webhook function's core: each record of the webhook queue is one event as EventBridge delivered it
// (its `detail` is the smtpq event), POSTed to WEBHOOK_URL signed as Standard Webhooks says. A 2xx is done;
// anything else (a non-2xx, a timeout, a refused connection, a redirect) is retried on the Standard Webhooks
// schedule by hiding the record for the next delay, and after the last try it is left to the queue's redrive
// (dead-letter queue, with an alarm). Delivery of mail never waits on any of this: it is another queue.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { EVENT_TYPES, type SmtpqEvent } from '../../lib/delivery/events.ts';
import { signWebhook } from '../../lib/delivery/webhook-signature.ts';

/**
 * Seconds to wait after the n-th failed try (Standard Webhooks' example schedule): 5 s, 5 min, 30 min, 2 h,
 * 5 h, 10 h, 10 h — eight tries over about 27.5 hours. The queue's maxReceiveCount is its length + 1.
 */
export const WEBHOOK_RETRY_SECONDS = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000] as const;
export const WEBHOOK_MAX_TRIES = WEBHOOK_RETRY_SECONDS.length + 1;

/** One try, as the dev inbox shows it. */
export interface WebhookAttempt {
  eventId: string;
  type: string;
  messageId: string;
  try: number;
  at: string;
  /** The HTTP status; undefined when no answer came (timeout, connection refused). */
  status?: number;
  error?: string;
  /** When the next try is due; undefined when delivered or given up. */
  retryAt?: string;
}

export interface WebhookDeps {
  url: string;
  secret(): Promise<string>;
  timeoutMs: number;
  queue: {
    changeVisibilityBatch(
      changes: readonly { receiptHandle: string; seconds: number }[],
    ): Promise<{ receiptHandle: string; error: string }[]>;
  };
  logger: Logger;
  fetch?: typeof fetch;
  now?: () => Date;
  onAttempt?(attempt: WebhookAttempt): void;
}

export type WebhookHandler = (event: SQSEvent) => Promise<SQSBatchResponse>;

export function createWebhookHandler(deps: WebhookDeps): WebhookHandler {
  const post = deps.fetch ?? fetch;
  const now = deps.now ?? (() => new Date());
  return async (event) => {
    const failures: SQSBatchItemFailure[] = [];
    const hide: { receiptHandle: string; seconds: number }[] = [];
    const secret = await deps.secret();
    // One message's events one after the other, in the order received (the bus publishes them in the
    // order of the ledger's changes); different messages' in parallel.
    const byMessage = new Map<string, SQSRecord[]>();
    for (const record of event.Records) {
      const key = messageOf(record.body) ?? record.messageId;
      byMessage.set(key, [...(byMessage.get(key) ?? []), record]);
    }
    const deliverOne = async (record: SQSRecord) => {
      const tries = receiveCount(record);
      const parsed = readEvent(record.body);
      if (!parsed.ok) {
        // No retry can fix it: straight to the dead-letter queue, with the reason in the log.
        deps.logger.error('webhook queue record is not an smtpq event: left for the dead-letter queue', {
          sqsMessageId: record.messageId,
          reason: parsed.reason,
        });
        failures.push({ itemIdentifier: record.messageId });
        hide.push({ receiptHandle: record.receiptHandle, seconds: 0 });
        return;
      }
      const smtpqEvent = parsed.event;
      const result = await postOnce(post, deps, secret, smtpqEvent, now());
      const delay = WEBHOOK_RETRY_SECONDS[tries - 1];
      const attempt: WebhookAttempt = {
        eventId: smtpqEvent.id,
        type: smtpqEvent.type,
        messageId: smtpqEvent.data.messageId,
        try: tries,
        at: now().toISOString(),
        ...result,
      };
      if (result.ok) {
        deps.onAttempt?.(attempt);
        return;
      }
      failures.push({ itemIdentifier: record.messageId });
      if (delay === undefined) {
        deps.logger.error('webhook not delivered after the last try: left for the dead-letter queue', {
          eventId: smtpqEvent.id,
          tries,
          status: result.status,
          error: result.error,
        });
        // Received again at once, and moved by the redrive (maxReceiveCount) to the DLQ.
        hide.push({ receiptHandle: record.receiptHandle, seconds: 0 });
      } else {
        attempt.retryAt = new Date(now().getTime() + delay * 1000).toISOString();
        deps.logger.warn('webhook not delivered; retried later', {
          eventId: smtpqEvent.id,
          tries,
          status: result.status,
          error: result.error,
          retryInSeconds: delay,
        });
        hide.push({ receiptHandle: record.receiptHandle, seconds: delay });
      }
      deps.onAttempt?.(attempt);
    };
    await Promise.all(
      [...byMessage.values()].map(async (records) => {
        for (const record of records) await deliverOne(record);
      }),
    );
    if (hide.length > 0) {
      const failed = await deps.queue
        .changeVisibilityBatch(hide)
        .catch((error: unknown) =>
          hide.map((h) => ({ receiptHandle: h.receiptHandle, error: String(error) })),
        );
      for (const f of failed)
        deps.logger.warn("could not set the retry's visibility; the queue's own timeout applies", {
          error: f.error,
        });
    }
    return { batchItemFailures: failures };
  };
}

type PostResult = { ok: true; status: number } | { ok: false; status?: number; error: string };

async function postOnce(
  post: typeof fetch,
  deps: WebhookDeps,
  secret: string,
  event: SmtpqEvent,
  at: Date,
): Promise<PostResult> {
  const signed = signWebhook(secret, event, at);
  try {
    const response = await post(deps.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'smtpq-webhooks/1', ...signed.headers },
      body: signed.body,
      // A redirect is not followed (the signature is for this URL's owner): it counts as a failure.
      redirect: 'manual',
      signal: AbortSignal.timeout(deps.timeoutMs),
    });
    // The answer's body is not needed; reading it frees the connection.
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
    return { ok: false, status: response.status, error: `HTTP ${response.status}` };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    const reason =
      e.name === 'TimeoutError' ? `no answer within ${deps.timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { ok: false, error: reason };
  }
}

type ReadResult = { ok: true; event: SmtpqEvent } | { ok: false; reason: string };

/** An SQS body from the EventBridge rule: the EventBridge event, whose detail is the smtpq event. */
function readEvent(body: string): ReadResult {
  let envelope: unknown;
  try {
    envelope = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  const detail = (envelope as { detail?: unknown } | null)?.detail as Partial<SmtpqEvent> | undefined;
  if (
    !detail ||
    typeof detail.id !== 'string' ||
    !(EVENT_TYPES as readonly string[]).includes(String(detail.type)) ||
    typeof detail.timestamp !== 'string' ||
    typeof detail.data?.messageId !== 'string'
  )
    return { ok: false, reason: 'detail is not an smtpq event { id, type, timestamp, data }' };
  return { ok: true, event: detail as SmtpqEvent };
}

function messageOf(body: string): string | undefined {
  const parsed = readEvent(body);
  return parsed.ok ? parsed.event.data.messageId : undefined;
}

function receiveCount(record: SQSRecord): number {
  return Math.max(1, Number.parseInt(record.attributes?.ApproximateReceiveCount ?? '1', 10) || 1);
}
