// Emulates the Lambda SQS event source against any SQS endpoint (moto, LocalStack, AWS): long-polls the
// queue, hands each batch to the handler as a real SQSEvent, deletes the records the handler finished
// (partial batch response, ReportBatchItemFailures) and leaves the rest to their visibility timeout.
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { localLambdaContext } from './lambda-context.ts';

/** A Lambda handler may resolve with nothing, which Lambda reads as "the whole batch succeeded". */
// biome-ignore lint/suspicious/noConfusingVoidType: handlers declared as returning Promise<void> must fit
type HandlerResult = SQSBatchResponse | undefined | void;

export type BatchHandler = (event: SQSEvent, context: Context) => Promise<HandlerResult>;

export interface SqsPollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  handler: BatchHandler;
  /** For the records' awsRegion and the context's ARN. Default us-east-1. */
  region?: string;
  /** Records per invocation, 1–10,000 (Lambda's BatchSize for standard queues; above 10 Lambda needs a batching
   *  window, and gathers the batch from several receives of at most 10, as this does). Default 10. */
  batchSize?: number;
  /** Invocations at once (the event source's MaximumConcurrency; each invocation opens one SMTP connection). Default 1. */
  concurrency?: number;
  /** MaximumBatchingWindowInSeconds: keep gathering records this long while the batch is not full. Default 0. */
  batchingWindowSeconds?: number;
  /** Long-poll wait of each ReceiveMessage, 0–20 s. Default 2, so stop() never waits long. */
  waitTimeSeconds?: number;
  /** The emulated function's timeout: getRemainingTimeInMillis() counts down from it. Default 300 s. */
  functionTimeoutMs?: number;
  functionName?: string;
  /** Called after every batch: what was invoked and what became of each record. */
  onBatch?: (report: BatchReport) => void;
  /** Receive, delete or handler errors. Default: console.error. */
  onError?: (error: unknown) => void;
}

export interface BatchReport {
  event: SQSEvent;
  /** SQS message ids deleted (finished), and left on the queue (reported failures, or the whole batch). */
  deleted: string[];
  /** How long the handler ran (the invocation's billed duration, roughly). */
  durationMs: number;
  retained: string[];
  /** The handler threw, or answered with an identifier not in the batch: Lambda then retries the whole batch. */
  wholeBatchFailed: boolean;
}

export interface SqsPoller {
  start(): void;
  /**
   * Stops polling; resolves once the receive in progress has returned (at most waitTimeSeconds) and its
   * records are handled. The receive is not aborted: SQS would still count it, and hide its messages
   * until their visibility timeout, without anyone handling them.
   */
  stop(): Promise<void>;
  /** One receive → invoke → delete round; the number of records handled. For tests that drive the pace. */
  pollOnce(): Promise<number>;
}

const MAX_BATCH = 10_000;
/** ReceiveMessage and DeleteMessageBatch take at most 10 messages; a bigger batch takes several calls. */
const PER_CALL = 10;
/** Receives in flight at once while a batch is gathered. */
const RECEIVES_IN_PARALLEL = 10;
const ERROR_PAUSE_MS = 1000;

export function createSqsPoller(options: SqsPollerOptions): SqsPoller {
  const region = options.region ?? 'us-east-1';
  const batchSize = Math.min(MAX_BATCH, Math.max(1, options.batchSize ?? PER_CALL));
  const waitTimeSeconds = Math.min(20, Math.max(0, options.waitTimeSeconds ?? 2));
  const windowMs = Math.max(0, options.batchingWindowSeconds ?? 0) * 1000;
  const onError = options.onError ?? ((error: unknown) => console.error('[sqs-poller]', error));
  let queueArn: string | undefined;
  let running = false;
  let stopping = false;
  let loop: Promise<void> | undefined;
  /** Ends the pause after an error early; receives are never aborted (see stop()). */
  let abort = new AbortController();

  async function arn(): Promise<string> {
    if (queueArn) return queueArn;
    const result = await options.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: options.queueUrl, AttributeNames: ['QueueArn'] }),
    );
    queueArn =
      result.Attributes?.QueueArn ??
      `arn:aws:sqs:${region}:000000000000:${options.queueUrl.split('/').pop()}`;
    return queueArn;
  }

  /** Up to `max` messages: several receives of at most 10 in parallel. */
  async function receive(max: number, wait: number): Promise<Message[]> {
    const calls = Math.min(RECEIVES_IN_PARALLEL, Math.ceil(max / PER_CALL));
    const sizes = Array.from({ length: calls }, (_, i) => Math.min(PER_CALL, max - i * PER_CALL));
    return (await Promise.all(sizes.map((n) => receiveOnce(n, wait)))).flat();
  }

  async function receiveOnce(max: number, wait: number): Promise<Message[]> {
    const result = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: wait,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    return result.Messages ?? [];
  }

  /**
   * A batch like Lambda's: one receive long-polls for the first records; then, until the batch is full or the
   * window ends, receives in parallel fill it up (short polls when less than a second of the window is left).
   */
  async function gather(): Promise<Message[]> {
    const messages = await receiveOnce(Math.min(PER_CALL, batchSize), waitTimeSeconds);
    if (messages.length === 0 || windowMs === 0) return messages;
    const until = Date.now() + windowMs;
    while (messages.length < batchSize && !stopping && Date.now() < until) {
      const wait = Math.min(20, Math.floor((until - Date.now()) / 1000));
      const more = await receive(batchSize - messages.length, wait);
      messages.push(...more);
      if (more.length === 0 && wait === 0) await pause(Math.min(200, until - Date.now()), abort.signal);
    }
    return messages;
  }

  async function pollOnce(): Promise<number> {
    const source = await arn();
    // A message whose visibility ran out while the batch was gathered comes back within it: once is enough,
    // with its newest receipt handle (the only one that can still delete it).
    const messages = [...new Map((await gather()).map((m) => [m.MessageId, m])).values()];
    if (messages.length === 0) return 0;
    const event: SQSEvent = { Records: messages.map((m) => toRecord(m, source, region)) };
    const context = localLambdaContext(
      options.functionName ?? 'smtpq-worker',
      options.functionTimeoutMs ?? 300_000,
      region,
    );
    const ids = new Set(event.Records.map((r) => r.messageId));
    let failed: Set<string>;
    let wholeBatchFailed = false;
    const started = Date.now();
    try {
      const response = await options.handler(event, context);
      const reported = (response?.batchItemFailures ?? []).map((f) => f.itemIdentifier);
      // Lambda fails the whole batch on an identifier that is empty or not in it.
      wholeBatchFailed = reported.some((id) => !id || !ids.has(id));
      failed = wholeBatchFailed ? ids : new Set(reported);
    } catch (error) {
      onError(error);
      wholeBatchFailed = true;
      failed = ids;
    }
    const durationMs = Date.now() - started;
    const done = event.Records.filter((r) => !failed.has(r.messageId));
    const deleted = await remove(done);
    options.onBatch?.({
      event,
      deleted,
      durationMs,
      retained: event.Records.filter((r) => !deleted.includes(r.messageId)).map((r) => r.messageId),
      wholeBatchFailed,
    });
    return messages.length;
  }

  /** Deletes the finished records, 10 per call, the calls in parallel. */
  async function remove(records: SQSRecord[]): Promise<string[]> {
    const chunks: SQSRecord[][] = [];
    for (let i = 0; i < records.length; i += PER_CALL) chunks.push(records.slice(i, i + PER_CALL));
    const deleted = await Promise.all(
      chunks.map(async (chunk) => {
        const result = await options.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: chunk.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
          }),
        );
        for (const f of result.Failed ?? [])
          onError(new Error(`delete of record ${f.Id} failed: ${f.Code} ${f.Message}`));
        return (result.Successful ?? []).map((s) => chunk[Number(s.Id)]!.messageId);
      }),
    );
    return deleted.flat();
  }

  async function run(): Promise<void> {
    while (running) {
      try {
        await pollOnce();
      } catch (error) {
        onError(error);
        await pause(ERROR_PAUSE_MS, abort.signal);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopping = false;
      abort = new AbortController();
      const loops = Array.from({ length: Math.max(1, options.concurrency ?? 1) }, () => run());
      loop = Promise.all(loops).then(() => {});
    },
    async stop() {
      running = false;
      stopping = true;
      abort.abort();
      await loop;
      loop = undefined;
    },
    pollOnce,
  };
}

/** Creates and starts a poller (what `npm run dev` uses). */
export async function startSqsPoller(options: SqsPollerOptions): Promise<SqsPoller> {
  const poller = createSqsPoller(options);
  poller.start();
  return poller;
}

function toRecord(message: Message, eventSourceARN: string, awsRegion: string): SQSRecord {
  const a = message.Attributes ?? {};
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? '',
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      ...(a.AWSTraceHeader ? { AWSTraceHeader: a.AWSTraceHeader } : {}),
    },
    messageAttributes: toMessageAttributes(message.MessageAttributes ?? {}),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN,
    awsRegion,
  };
}

/** The SQS API's attribute shape → the Lambda event's (camel-cased, list fields always present). */
function toMessageAttributes(attributes: Record<string, MessageAttributeValue>): SQSMessageAttributes {
  const out: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(attributes)) {
    out[name] = {
      dataType: value.DataType ?? 'String',
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined
        ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }
        : {}),
      stringListValues: value.StringListValues ?? [],
      binaryListValues: (value.BinaryListValues ?? []).map((b) => Buffer.from(b).toString('base64')),
    };
  }
  return out;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
