// The SQS side of the API and the worker: enqueue one message or many, and move messages' visibility.
// sendBatch never loses an entry silently: every input gets a result, entries SQS fails for its own reasons
// are retried with back-off, and whatever still fails is reported with SQS's code and message.
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  type SendMessageBatchCommandOutput,
  type SendMessageBatchRequestEntry,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { MAX_VISIBILITY_SECONDS } from '../delivery/backoff.ts';
import { type QueueMessage, queueDelaySeconds, toSqsBody } from '../delivery/queue-message.ts';

/** SQS limits: 10 entries per SendMessageBatch, 1 MiB for the whole batch (visibility: lib/delivery/backoff.ts). */
const maxEntriesPerBatch = 10;
export const MAX_SQS_BATCH_BYTES = 1024 * 1024;

/** An SQS call abandoned after ProducerOptions.callTimeoutMs. */
export class SqsTimeoutError extends Error {
  override readonly name = 'TimeoutError';
  readonly code = 'SQS_TIMEOUT';
}

export type SendResult = { ok: true; messageId: string } | { ok: false; code: string; error: string };

export interface ProducerOptions {
  /** Further tries of entries that SQS reported as failed without a sender fault. Default 3. */
  retries?: number;
  /** First back-off; doubled each retry, with full jitter. Default 100 ms. */
  baseDelayMs?: number;
  /** Byte budget of one SendMessageBatch call. Default 1 MiB. */
  maxBatchBytes?: number;
  /**
   * Abandon an SQS call (with the SDK's own retries) that has not completed after this long, failing it with
   * a TimeoutError. Default: none (the SDK waits up to 15 minutes on a silent connection). The API sets it,
   * so a hung call fails, and is reported, before the Lambda itself times out with nothing recorded.
   */
  callTimeoutMs?: number;
  /** SendMessageBatch calls in flight at once. Default 10 (a batch of 100 messages in one go). */
  concurrentCalls?: number;
}

interface PendingEntry {
  index: number;
  body: string;
  bytes: number;
  /** SQS DelaySeconds: a scheduled message waits on the queue until it is due (or for 15 minutes). */
  delaySeconds: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SqsQueueProducer {
  private readonly retries: number;
  private readonly baseDelayMs: number;
  private readonly maxBatchBytes: number;
  private readonly callTimeoutMs: number | undefined;
  private readonly concurrentCalls: number;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    options: ProducerOptions = {},
  ) {
    this.retries = options.retries ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxBatchBytes = options.maxBatchBytes ?? MAX_SQS_BATCH_BYTES;
    this.callTimeoutMs = options.callTimeoutMs;
    this.concurrentCalls = Math.max(1, options.concurrentCalls ?? 10);
  }

  /** Enqueues one message; returns the SQS message id. */
  async send(message: QueueMessage): Promise<string> {
    const result = await this.call((options) =>
      this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: toSqsBody(message),
          DelaySeconds: queueDelaySeconds(message.record, new Date()),
        }),
        options,
      ),
    );
    return result.MessageId ?? '';
  }

  /**
   * Enqueues many messages, 10 (and at most 1 MiB) per call, up to `concurrentCalls` calls at once;
   * results[i] is the outcome of messages[i].
   */
  async sendBatch(messages: readonly QueueMessage[]): Promise<SendResult[]> {
    const results = new Array<SendResult | undefined>(messages.length);
    let pending: PendingEntry[] = messages.map((message, index) => {
      const body = toSqsBody(message);
      const delaySeconds = queueDelaySeconds(message.record, new Date());
      return { index, body, bytes: Buffer.byteLength(body, 'utf8'), delaySeconds };
    });
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(Math.random() * this.baseDelayMs * 2 ** (attempt - 1));
      const retry: PendingEntry[] = [];
      // Calls go out a few at a time: a batch of 100 takes one call's time, and with callTimeoutMs set a
      // hung SQS costs the caller one timeout per group rather than one per call.
      const calls = [...this.chunks(pending)];
      for (let start = 0; start < calls.length; start += this.concurrentCalls) {
        const group = calls.slice(start, start + this.concurrentCalls);
        const retries = await Promise.all(
          group.map((chunk) => this.sendChunk(chunk, results, attempt < this.retries)),
        );
        retry.push(...retries.flat());
      }
      pending = retry;
    }
    return results.map(
      (result, index) => result ?? { ok: false, code: 'Unknown', error: `no result for entry ${index}` },
    );
  }

  /**
   * Sets a received message's visibility timeout (the back-off before SQS delivers it again).
   * Rounded to whole seconds and clamped to SQS's range 0…43200 (12 h).
   */
  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    const timeout = Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.round(seconds)));
    await this.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: timeout,
      }),
    );
  }

  /**
   * Sets many received messages' visibility at once (ChangeMessageVisibilityBatch, 10 per call, the calls in
   * parallel). Returns the receipt handles SQS did not change, with its reason; the rest are done.
   */
  async changeVisibilityBatch(
    changes: readonly { receiptHandle: string; seconds: number }[],
  ): Promise<{ receiptHandle: string; error: string }[]> {
    const calls: Promise<{ receiptHandle: string; error: string }[]>[] = [];
    for (let i = 0; i < changes.length; i += maxEntriesPerBatch) {
      const chunk = changes.slice(i, i + maxEntriesPerBatch);
      calls.push(
        this.sqs
          .send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: this.queueUrl,
              Entries: chunk.map((c, n) => ({
                Id: String(n),
                ReceiptHandle: c.receiptHandle,
                VisibilityTimeout: Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.round(c.seconds))),
              })),
            }),
          )
          .then(
            (out) =>
              (out.Failed ?? []).map((f) => ({
                receiptHandle: chunk[Number(f.Id)]?.receiptHandle ?? '',
                error: `${f.Code ?? 'Error'}: ${f.Message ?? ''}`,
              })),
            (error: unknown) => chunk.map((c) => ({ receiptHandle: c.receiptHandle, error: String(error) })),
          ),
      );
    }
    return (await Promise.all(calls)).flat();
  }

  /** Runs one SQS call, aborted after callTimeoutMs (if set) with an SqsTimeoutError. */
  private async call<T>(send: (options: { abortSignal?: AbortSignal }) => Promise<T>): Promise<T> {
    if (this.callTimeoutMs === undefined) return send({});
    const abortSignal = AbortSignal.timeout(this.callTimeoutMs);
    try {
      return await send({ abortSignal });
    } catch (error) {
      if (!abortSignal.aborted) throw error;
      // SQS may still have taken the message: the caller can only record that it does not know it did.
      throw new SqsTimeoutError(`SQS did not answer within ${this.callTimeoutMs} ms`, { cause: error });
    }
  }

  /** Groups entries into calls of ≤ 10 entries and ≤ maxBatchBytes (an oversize entry goes alone). */
  private *chunks(entries: PendingEntry[]): Generator<PendingEntry[]> {
    let chunk: PendingEntry[] = [];
    let bytes = 0;
    for (const entry of entries) {
      if (
        chunk.length > 0 &&
        (chunk.length === maxEntriesPerBatch || bytes + entry.bytes > this.maxBatchBytes)
      ) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
      chunk.push(entry);
      bytes += entry.bytes;
    }
    if (chunk.length > 0) yield chunk;
  }

  /** Sends one chunk, records final results, and returns the entries worth trying again. */
  private async sendChunk(
    chunk: PendingEntry[],
    results: Array<SendResult | undefined>,
    mayRetry: boolean,
  ): Promise<PendingEntry[]> {
    const entries: SendMessageBatchRequestEntry[] = chunk.map((entry) => ({
      Id: String(entry.index),
      MessageBody: entry.body,
      DelaySeconds: entry.delaySeconds,
    }));
    let response: SendMessageBatchCommandOutput;
    try {
      response = await this.call((options) =>
        this.sqs.send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }), options),
      );
    } catch (error) {
      // The whole call failed (after the SDK's own retries): every entry of the chunk is reported.
      const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
      for (const entry of chunk) results[entry.index] = { ok: false, code: name, error: message };
      return [];
    }
    const byIndex = new Map(chunk.map((entry) => [String(entry.index), entry]));
    for (const success of response.Successful ?? []) {
      const entry = byIndex.get(success.Id ?? '');
      if (!entry) continue;
      results[entry.index] = { ok: true, messageId: success.MessageId ?? '' };
      byIndex.delete(success.Id!);
    }
    const retry: PendingEntry[] = [];
    for (const failure of response.Failed ?? []) {
      const entry = byIndex.get(failure.Id ?? '');
      if (!entry) continue;
      byIndex.delete(failure.Id!);
      // A sender fault (bad body, too big) fails again the same way; anything else is SQS's and may pass.
      if (mayRetry && !failure.SenderFault) retry.push(entry);
      else {
        results[entry.index] = {
          ok: false,
          code: failure.Code ?? 'Failed',
          error: failure.Message ?? 'SQS reported the entry as failed',
        };
      }
    }
    // An entry SQS mentioned in neither list: we cannot know if it was enqueued, so say so.
    for (const entry of byIndex.values()) {
      results[entry.index] = {
        ok: false,
        code: 'Unacknowledged',
        error: 'SQS returned no result for the entry',
      };
    }
    return retry;
  }
}
