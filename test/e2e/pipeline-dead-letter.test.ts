// Records that cannot be finished reach the dead-letter queue through the queue's real redrive policy
// (moto): a message the relay keeps deferring, and malformed records — with the reason on the status
// record whenever the record names a message.
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StatusView } from '../../functions/api/status.ts';
import { type BatchReport, createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { apiEvent } from '../integration/api-harness.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';

const MAX_RECEIVE_COUNT = 2;

type Handler<E, R> = (event: E) => Promise<R>;
let api: Handler<ReturnType<typeof apiEvent>, { statusCode?: number; body?: string }>;
let worker: Handler<SQSEvent, { batchItemFailures: { itemIdentifier: string }[] }>;
let resources: TestResources;
let smtp: TestSmtpServer;
let poller: SqsPoller;
const reports: BatchReport[] = [];
/** Bodies that reached the DLQ (received and kept here, so each test can look for its own). */
const deadLetters: string[] = [];

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: 1,
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
  });
  api = (await import('../../functions/api/index.ts')).handler;
  worker = (await import('../../functions/worker/index.ts')).handler;
  poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: (event) => worker(event),
    onBatch: (report) => reports.push(report),
  });
});

afterAll(async () => {
  await poller?.stop();
  await smtp?.close();
});

async function submit(request: object): Promise<string> {
  const response = await api(apiEvent({ method: 'POST', path: '/v1/messages', body: request }));
  expect(response.statusCode, response.body).toBe(202);
  return (JSON.parse(response.body!) as { id: string }).id;
}

async function getStatus(id: string): Promise<StatusView> {
  const response = await api(apiEvent({ path: `/v1/messages/${id}` }));
  expect(response.statusCode).toBe(200);
  return JSON.parse(response.body!);
}

async function enqueueRaw(body: string): Promise<void> {
  await resources.clients.sqs.send(
    new SendMessageCommand({ QueueUrl: resources.queueUrl, MessageBody: body }),
  );
}

/** Takes the API's own message for `id` off the queue without handling it (for the malformed cases). */
async function discardQueued(id: string): Promise<void> {
  let gone = false;
  const discard = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: async (event) => {
      gone ||= event.Records.some((r) => r.body.includes(`"id":"${id}"`));
    },
  });
  for (let i = 0; i < 10 && !gone; i++) await discard.pollOnce();
  expect(gone).toBe(true);
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

  it('a body that is not JSON: reported on every receive, then dead-lettered', async () => {
    const body = '{"v":1,"id": not json';
    await enqueueRaw(body);
    const dead = await untilDeadLettered((b) => b === body);
    expect(dead).toBe(body);
    expect(handled((b) => b === body)).toEqual({
      received: MAX_RECEIVE_COUNT,
      reportedFailed: MAX_RECEIVE_COUNT,
    });
  }, 60_000);

  it('a record with a known id but an invalid request: the message is failed with the reason, the record dead-lettered', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['someone@example.org'], text: 'x' });
    await discardQueued(id);
    const body = JSON.stringify({ v: 1, id, request: { from: 'not an address', to: [] } });
    await enqueueRaw(body);
    await untilDeadLettered((b) => b === body);
    const status = await getStatus(id);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/^malformed queue record: invalid send request: /);
    expect(status.recipients[0]).toMatchObject({ state: 'failed' });
    expect(smtp.messages.filter((m) => m.rcptTo.includes('someone@example.org'))).toEqual([]);
  }, 60_000);

  it('a claim-check pointer whose payload is gone: failed with the reason, dead-lettered', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['lost@example.org'], text: 'x' });
    await discardQueued(id);
    const body = JSON.stringify({ v: 1, id, payloadKey: `payloads/${id}.json` });
    await enqueueRaw(body);
    await untilDeadLettered((b) => b === body);
    const status = await getStatus(id);
    expect(status).toMatchObject({ state: 'failed' });
    expect(status.error).toBe(`malformed queue record: claim-check payload payloads/${id}.json is missing`);
  }, 60_000);

  it('a record of the wrong shape without a usable id is dead-lettered too', async () => {
    const body = JSON.stringify({ v: 2, id: '../../etc', request: {} });
    await enqueueRaw(body);
    const dead = await untilDeadLettered((b) => b === body);
    expect(dead).toBe(body);
  }, 60_000);
});
