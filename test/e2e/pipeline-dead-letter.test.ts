// Records that cannot be finished reach the dead-letter queue through the queue's real redrive policy
// (moto): a message the relay keeps deferring, and malformed records — with the reason on the status
// record (the DynamoDB ledger) whenever the record names a message. The queue has the deployed visibility
// timeout (1085 s), so a record can only be received again within a test if the worker itself set its
// visibility (ChangeMessageVisibilityBatch): the back-off for a deferred one, 0 for a malformed one. And the
// contrast: a well-formed queue message whose ledger entry was never written (the API enqueues first and
// died before its ledger write) is not dead-lettered but delivered, once, its record written by the worker.
import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newMessageId } from '../../functions/api/ids.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker } from '../../functions/worker/worker.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { loadWorkerConfig } from '../../lib/config.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import { toSqsBody } from '../../lib/delivery/queue-message.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import { type BatchReport, createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { apiEvent } from '../integration/api-harness.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import {
  type ApiEntry,
  eventSourceFor,
  statusThrough,
  submitThrough,
  type WorkerEntry,
} from './pipeline-harness.ts';

const MAX_RECEIVE_COUNT = 3;
/** The deployed queue's visibility timeout (infra: 6 × the worker timeout + the batching window). */
const QUEUE_VISIBILITY_SECONDS = 1085;

let api: ApiEntry;
let worker: WorkerEntry;
let resources: TestResources;
let smtp: TestSmtpServer;
let poller: SqsPoller;
const reports: BatchReport[] = [];
/** Bodies that reached the DLQ (received and kept here, so each test can look for its own). */
const deadLetters: string[] = [];
/** Every ChangeMessageVisibility the worker made, and whether SQS accepted it. */
const visibilityChanges: { receiptHandle: string; seconds: number; accepted: boolean }[] = [];
/** The worker's log lines at level ERROR and above, as the formatter received them. */
const errorLogs: Record<string, unknown>[] = [];

class CapturingFormatter extends LogFormatter {
  formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    const entry = { level: attributes.logLevel, message: attributes.message, ...additional };
    errorLogs.push(entry);
    return new LogItem({ attributes: entry });
  }
}

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: QUEUE_VISIBILITY_SECONDS,
    maxReceiveCount: MAX_RECEIVE_COUNT,
  });
  smtp = await startTestSmtpServer({
    tls: 'none',
    hooks: {
      rcpt: ({ address }) =>
        address?.startsWith('full-') ? { code: 452, message: '4.2.2 mailbox full' } : undefined,
    },
  });
  Object.assign(process.env, resources.env, {
    POWERTOOLS_LOG_LEVEL: 'CRITICAL',
    POWERTOOLS_METRICS_DISABLED: 'true',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_TLS: 'none',
    SMTP_REQUIRE_TLS: 'false',
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '1',
    // More attempts than the queue allows receives: the redrive, not the retry policy, ends these records.
    RETRY_MAX_ATTEMPTS: '30',
    // A missing status record is the API's to write for 1 s here (60 s by default), then the worker's.
    RECORD_WRITE_GRACE_SECONDS: '1',
  });
  api = (await import('../../functions/api/index.ts')).handler;
  const producer = new SqsQueueProducer(resources.clients.sqs, resources.queueUrl);
  worker = createWorker(
    createWorkerDeps(loadWorkerConfig(), {
      clients: resources.clients,
      logger: new Logger({ logLevel: 'ERROR', logFormatter: new CapturingFormatter() }),
      queue: {
        sendBatch: (messages) => producer.sendBatch(messages),
        async changeVisibilityBatch(changes) {
          let failed: { receiptHandle: string; error: string }[];
          try {
            failed = await producer.changeVisibilityBatch(changes);
          } catch (error) {
            for (const { receiptHandle, seconds } of changes)
              visibilityChanges.push({ receiptHandle, seconds, accepted: false });
            throw error;
          }
          for (const { receiptHandle, seconds } of changes)
            visibilityChanges.push({
              receiptHandle,
              seconds,
              accepted: !failed.some((f) => f.receiptHandle === receiptHandle),
            });
          return failed;
        },
      },
    }),
  );
  poller = eventSourceFor(resources, worker, reports);
});

afterAll(async () => {
  await poller?.stop();
  await smtp?.close();
});

const submit = (request: object) => submitThrough(api, request);
const getStatus = (id: string) => statusThrough(api, id);

async function enqueueRaw(body: string): Promise<void> {
  await resources.clients.sqs.send(
    new SendMessageCommand({ QueueUrl: resources.queueUrl, MessageBody: body }),
  );
}

/**
 * Takes the API's own message for `id` off the queue without handling it (for the malformed cases); returns
 * its body, so a test can enqueue a damaged copy that still carries the message's initial status record.
 */
async function discardQueued(id: string): Promise<{ v: 1; id: string; record: Record<string, unknown> }> {
  let body: string | undefined;
  const discard = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: async (event) => {
      body ??= event.Records.find((r) => r.body.includes(`"id":"${id}"`))?.body;
    },
  });
  for (let i = 0; i < 10 && body === undefined; i++) await discard.pollOnce();
  expect(body).toBeDefined();
  return JSON.parse(body!) as { v: 1; id: string; record: Record<string, unknown> };
}

/** Runs the worker behind the poller until `body` turns up on the DLQ (at most ~40 s). */
async function untilDeadLettered(matches: (body: string) => boolean): Promise<string> {
  poller.start();
  try {
    for (let i = 0; i < 40; i++) {
      const found = deadLetters.find(matches);
      if (found) return found;
      const { Messages = [] } = await resources.clients.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: resources.dlqUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      deadLetters.push(...Messages.map((m) => m.Body!));
    }
  } finally {
    await poller.stop();
  }
  throw new Error('nothing matching reached the dead-letter queue');
}

/** The records handed to the worker whose body satisfies `matches`, in order. */
function recordsMatching(matches: (body: string) => boolean): SQSRecord[] {
  return reports.flatMap((r) => r.event.Records.filter((x) => matches(x.body)));
}

/**
 * A malformed record went the fast way: received maxReceiveCount times (ApproximateReceiveCount 1, 2, …),
 * each receipt set visible again at once (visibility 0, accepted by SQS) — with the queue's 1085 s
 * visibility the next receive could not have happened otherwise — and each receive logged at ERROR with
 * the SQS message id and the reason.
 */
function expectFastRedrive(matches: (body: string) => boolean, reason: RegExp): void {
  const records = recordsMatching(matches);
  expect(records.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(
    Array.from({ length: MAX_RECEIVE_COUNT }, (_, i) => String(i + 1)),
  );
  for (const record of records) {
    expect(visibilityChanges.filter((c) => c.receiptHandle === record.receiptHandle)).toEqual([
      { receiptHandle: record.receiptHandle, seconds: 0, accepted: true },
    ]);
    const logged = errorLogs.filter(
      (l) =>
        l.sqsMessageId === record.messageId &&
        l.receiveCount === Number(record.attributes.ApproximateReceiveCount),
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ message: 'malformed queue record: left for the dead-letter queue' });
    expect(logged[0]!.reason).toMatch(reason);
  }
}

/** How often the worker was handed records whose body satisfies `matches`, and how many were reported failed. */
function handled(matches: (body: string) => boolean): { received: number; reportedFailed: number } {
  const records = reports.flatMap((r) =>
    r.event.Records.filter((x) => matches(x.body)).map((x) => ({ x, r })),
  );
  return {
    received: records.length,
    reportedFailed: records.filter(({ x, r }) => r.retained.includes(x.messageId)).length,
  };
}

describe('dead-letter queue', () => {
  it('a record the relay keeps deferring reaches the DLQ through redrive after maxReceiveCount receives', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['full-a@example.org'], text: 'x' });
    const byId = (body: string) => body.includes(`"id":"${id}"`);
    const dead = await untilDeadLettered(byId);
    expect(JSON.parse(dead)).toMatchObject({ v: 1, id });
    expect(handled(byId)).toEqual({ received: MAX_RECEIVE_COUNT, reportedFailed: MAX_RECEIVE_COUNT });
    const status = await getStatus(id);
    expect(status).toMatchObject({ state: 'deferred', attempts: MAX_RECEIVE_COUNT });
    expect(status.recipients[0]).toMatchObject({ state: 'deferred', reply: { code: 452 } });
    expect(status.transcripts).toHaveLength(MAX_RECEIVE_COUNT);
  }, 60_000);

  it('the queue really hides a reported record for its 1085 s visibility timeout unless the worker changes it', async () => {
    const { Attributes } = await resources.clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: resources.queueUrl, AttributeNames: ['VisibilityTimeout'] }),
    );
    expect(Attributes?.VisibilityTimeout).toBe(String(QUEUE_VISIBILITY_SECONDS));
  });

  it('a body that is not JSON: reported on every receive with visibility 0, then dead-lettered', async () => {
    const body = '{"v":1,"id": not json';
    await enqueueRaw(body);
    const dead = await untilDeadLettered((b) => b === body);
    expect(dead).toBe(body);
    expect(handled((b) => b === body)).toEqual({
      received: MAX_RECEIVE_COUNT,
      reportedFailed: MAX_RECEIVE_COUNT,
    });
    expectFastRedrive((b) => b === body, /^body is not JSON \(21 characters\)$/);
    // The reason names the length, never the content.
    expect(JSON.stringify(errorLogs)).not.toContain('not json');
  }, 60_000);

  it('a record with a known id but an invalid request: the message is failed with the reason, the record dead-lettered', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['someone@example.org'], text: 'x' });
    const { record } = await discardQueued(id);
    const body = JSON.stringify({ v: 1, id, record, request: { from: 'not an address', to: [] } });
    await enqueueRaw(body);
    await untilDeadLettered((b) => b === body);
    expectFastRedrive((b) => b === body, /^invalid send request: /);
    const status = await getStatus(id);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/^malformed queue record: invalid send request: /);
    expect(status.recipients[0]).toMatchObject({ state: 'failed' });
    expect(smtp.messages.filter((m) => m.rcptTo.includes('someone@example.org'))).toEqual([]);
  }, 60_000);

  it('a claim-check pointer whose payload is gone: failed with the reason, dead-lettered', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['lost@example.org'], text: 'x' });
    const { record } = await discardQueued(id);
    const body = JSON.stringify({ v: 1, id, record, payloadKey: `payloads/${id}.json` });
    await enqueueRaw(body);
    await untilDeadLettered((b) => b === body);
    expectFastRedrive((b) => b === body, /^claim-check payload .* is missing$/);
    const status = await getStatus(id);
    expect(status).toMatchObject({ state: 'failed' });
    expect(status.error).toBe(`malformed queue record: claim-check payload payloads/${id}.json is missing`);
  }, 60_000);

  it('a record of the wrong shape without a usable id is dead-lettered too', async () => {
    const body = JSON.stringify({ v: 2, id: '../../etc', request: {} });
    await enqueueRaw(body);
    const dead = await untilDeadLettered((b) => b === body);
    expect(dead).toBe(body);
    expectFastRedrive((b) => b === body, /^body is not a queue message: /);
  }, 60_000);

  it('a well-formed record whose ledger entry was never written is delivered once, not dead-lettered', async () => {
    // What the API leaves when it dies between its two steps: the message on the queue (first), no status
    // record (second). Once the grace is over, the worker writes the record from the queue message and
    // delivers it; before, it leaves the record to the API (one receive, returned for 2 s).
    const id = newMessageId();
    const request = { from: 'alice@example.com', to: ['ghost@example.org'], subject: 'orphan', text: 'x' };
    const validated = validateSendRequest(request);
    if (!validated.ok) throw new Error('test request is invalid');
    const { record } = newRecord(validated.value, id, new Date(), { messageIdDomain: 'smtpq.test' });
    const body = toSqsBody({ v: 1, id, record, request });
    const notFound = await api(apiEvent({ path: `/v1/messages/${id}` }));
    expect(notFound.statusCode).toBe(404);
    await enqueueRaw(body);

    poller.start();
    let status: Awaited<ReturnType<typeof getStatus>> | undefined;
    try {
      for (let i = 0; i < 60; i++) {
        const found = await api(apiEvent({ path: `/v1/messages/${id}` }));
        if (found.statusCode === 200) {
          status = JSON.parse(found.body!);
          if (status!.state === 'sent' && recordsMatching((b) => b === body).length > 0) break;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } finally {
      await poller.stop();
    }
    expect(status).toMatchObject({
      id,
      state: 'sent',
      attempts: 1,
      createdAt: record.createdAt,
      messageId: record.messageId,
      subject: 'orphan',
    });
    expect(status!.recipients).toMatchObject([{ address: 'ghost@example.org', state: 'delivered' }]);
    expect(smtp.messages.filter((m) => m.rcptTo.includes('ghost@example.org'))).toHaveLength(1);
    // Returned once within the grace (the API might still have been writing the record), then delivered and
    // deleted: nothing goes to the DLQ.
    expect(handled((b) => b === body)).toEqual({ received: 2, reportedFailed: 1 });
    const { Messages = [] } = await resources.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: resources.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    deadLetters.push(...Messages.map((m) => m.Body!));
    expect(deadLetters.filter((b) => b.includes(id))).toEqual([]);
  }, 60_000);
});
