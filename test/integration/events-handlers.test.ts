// The events function (the ledger's stream → EventBridge) and the webhook function (webhook queue → a signed
// POST) as handlers: against moto's DynamoDB stream and event bus, and a real HTTP listener.
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBRecord, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEventsHandler } from '../../functions/events/handler.ts';
import { createWebhookHandler, WEBHOOK_RETRY_SECONDS } from '../../functions/webhook/handler.ts';
import { ensureEventBus } from '../../lib/aws/event-bus.ts';
import {
  createEventBridgeClient,
  EventBridgePublisher,
  PublishError,
} from '../../lib/aws/event-publisher.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { eventsOf, type SmtpqEvent } from '../../lib/delivery/events.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import { newWebhookSecret, verifyWebhook } from '../../lib/delivery/webhook-signature.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import { toLambdaRecord } from '../../scripts/local/stream-poller.ts';
import { type EventObserver, observeBus } from '../support/event-observer.ts';
import { createTestResources, TEST_REGION, type TestResources } from '../support/moto.ts';
import { startWebhookListener, type WebhookListener } from '../support/webhook-listener.ts';

const silent = new Logger({ logLevel: 'SILENT' });
let resources: TestResources;
let streams: DynamoDBStreamsClient;
let ledger: DynamoLedger;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  streams = new DynamoDBStreamsClient({ region: TEST_REGION, endpoint: inject('motoEndpoint') });
  ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
});

/** A message submitted and then delivered to its one recipient: three committed versions. */
async function messageDelivered(): Promise<string> {
  const request = validateSendRequest({ from: 'a@example.com', to: ['x@example.org'], text: 'hi' });
  if (!request.ok) throw new Error('invalid');
  const id = `01ARZ3NDEKTSV4RRFF${randomUUID()
    .replace(/-/g, '')
    .slice(0, 8)
    .toUpperCase()
    .replace(/[ILOU]/g, '0')}`;
  const created = await ledger.create(
    newRecord(request.value, id, new Date(), { messageIdDomain: 'example.com' }).record,
  );
  const claimed = await ledger.update({ ...created.value, state: 'sending', attempts: 1 }, created.version);
  const at = new Date().toISOString();
  await ledger.update(
    {
      ...claimed.value,
      state: 'sent',
      updatedAt: at,
      recipients: claimed.value.recipients.map((r) => ({
        ...r,
        state: 'delivered',
        updatedAt: at,
        reply: { code: 250, lines: ['Ok'] },
      })),
    },
    claimed.version,
  );
  return id;
}

/** Everything the table's stream holds, as Lambda hands it over. */
async function streamRecords(): Promise<DynamoDBRecord[]> {
  const described = await streams.send(new DescribeStreamCommand({ StreamArn: resources.tableStreamArn }));
  const records: DynamoDBRecord[] = [];
  for (const shard of described.StreamDescription?.Shards ?? []) {
    const { ShardIterator } = await streams.send(
      new GetShardIteratorCommand({
        StreamArn: resources.tableStreamArn,
        ShardId: shard.ShardId!,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const out = await streams.send(new GetRecordsCommand({ ShardIterator: ShardIterator! }));
    records.push(...(out.Records ?? []).map((r) => toLambdaRecord(r, resources.tableStreamArn, TEST_REGION)));
  }
  return records;
}

describe('the events handler', () => {
  let observer: EventObserver;
  let publisher: EventBridgePublisher;
  beforeAll(async () => {
    const eventbridge = createEventBridgeClient({ region: TEST_REGION, endpoint: inject('motoEndpoint') });
    const bus = `smtpq-test-${randomUUID().slice(0, 8)}`;
    await ensureEventBus(eventbridge, bus);
    publisher = new EventBridgePublisher(eventbridge, bus);
    observer = await observeBus(eventbridge, resources.clients.sqs, bus);
  });
  afterAll(() => observer?.remove());

  it('publishes each committed change in order; a redelivered batch repeats the same events, same ids', async () => {
    // Prepare
    const id = await messageDelivered();
    const records = (await streamRecords()).filter((r) => JSON.stringify(r.dynamodb?.Keys).includes(id));
    expect(records.map((r) => r.eventName)).toEqual(['INSERT', 'MODIFY', 'MODIFY']);
    const handler = createEventsHandler({ publish: (e) => publisher.publish(e), logger: silent });

    // Act: the batch, then the same batch again (Lambda retries a stream batch after a timeout).
    expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] });
    const first = await observer.until((all) => all.length >= 3);
    expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] });
    const all = await observer.until((seen) => seen.length >= 6);

    // Assess
    expect(first.slice(0, 3).map((e) => e.type)).toEqual([
      'message.queued',
      'recipient.delivered',
      'message.sent',
    ]);
    expect(all.slice(3).map((e) => e.id)).toEqual(all.slice(0, 3).map((e) => e.id));
    expect(all.slice(3)).toEqual(all.slice(0, 3));
  });

  it('on a publish failure reports the stream record of the first event not taken', async () => {
    // Prepare: two messages' changes; EventBridge takes the first three events only.
    const a = await messageDelivered();
    const b = await messageDelivered();
    const records = (await streamRecords()).filter((r) =>
      [a, b].some((id) => JSON.stringify(r.dynamodb?.Keys).includes(id)),
    );
    const taken: SmtpqEvent[] = [];
    const handler = createEventsHandler({
      publish: async (events) => {
        taken.push(...events.slice(0, 3));
        throw new PublishError('EventBridge refused 1 of 6 events', 3);
      },
      logger: silent,
      onPublished: () => {},
    });

    // Act
    const response = await handler({ Records: records });

    // Assess: events 0-2 came from a's three records; event 3 is b's message.queued, from b's INSERT.
    const insertOfB = records.find(
      (r) => r.eventName === 'INSERT' && JSON.stringify(r.dynamodb?.Keys).includes(b),
    )!;
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: insertOfB.dynamodb!.SequenceNumber }] });
    expect(taken.map((e) => e.data.messageId)).toEqual([a, a, a]);
  });

  it('reports a record it cannot read instead of skipping it, after publishing the ones before it', async () => {
    const id = await messageDelivered();
    const [insert] = (await streamRecords()).filter((r) => JSON.stringify(r.dynamodb?.Keys).includes(id));
    const broken: DynamoDBRecord = structuredClone(insert!);
    broken.dynamodb!.NewImage!.nested = { S: '{not json' };
    broken.dynamodb!.SequenceNumber = 'broken-1';
    const published: SmtpqEvent[] = [];
    const handler = createEventsHandler({ publish: async (e) => void published.push(...e), logger: silent });

    const response = await handler({ Records: [insert!, broken] });

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'broken-1' }] });
    expect(published.map((e) => e.type)).toEqual(['message.queued']);
  });
});

describe('the webhook handler', () => {
  const secret = newWebhookSecret();
  let listener: WebhookListener;
  let answer = 204;
  beforeAll(async () => {
    listener = await startWebhookListener(() => answer);
  });
  afterAll(() => listener?.close());

  const event = (): SmtpqEvent => {
    const request = validateSendRequest({ from: 'a@example.com', to: ['x@example.org'], text: 'hi' });
    if (!request.ok) throw new Error('invalid');
    return eventsOf({
      after: newRecord(request.value, '01ARZ3NDEKTSV4RRFFQ69G5FAV', new Date(), { messageIdDomain: 'e.com' })
        .record,
      version: 1,
    })[0]!;
  };
  const sqsEvent = (bodies: string[], receiveCount = 1): SQSEvent => ({
    Records: bodies.map((body, i) => ({
      messageId: `m${i}`,
      receiptHandle: `r${i}`,
      body,
      attributes: {
        ApproximateReceiveCount: String(receiveCount),
        SentTimestamp: '0',
        SenderId: 'x',
        ApproximateFirstReceiveTimestamp: '0',
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:webhooks',
      awsRegion: 'us-east-1',
    })),
  });
  const envelope = (e: SmtpqEvent) =>
    JSON.stringify({ version: '0', id: 'eb-1', source: 'smtpq', 'detail-type': e.type, detail: e });
  function handler(url = listener.url, timeoutMs = 5_000) {
    const hidden: { receiptHandle: string; seconds: number }[] = [];
    const run = createWebhookHandler({
      url,
      secret: async () => secret,
      timeoutMs,
      queue: {
        changeVisibilityBatch: async (changes) => {
          hidden.push(...changes);
          return [];
        },
      },
      logger: silent,
    });
    return { run, hidden };
  }

  it('POSTs the event signed; a 2xx is done', async () => {
    answer = 204;
    const e = event();
    const { run, hidden } = handler();

    expect(await run(sqsEvent([envelope(e)]))).toEqual({ batchItemFailures: [] });

    const request = listener.received.at(-1)!;
    expect(request.headers['content-type']).toBe('application/json');
    expect(verifyWebhook(secret, request.body, request.headers as Record<string, string>)).toEqual({
      type: e.type,
      timestamp: e.timestamp,
      data: e.data,
    });
    expect(request.headers['webhook-id']).toBe(e.id);
    expect(hidden).toEqual([]);
  });

  it('retries a refused POST on the schedule, and after the last try leaves it to the dead-letter queue', async () => {
    answer = 503;
    for (const [tries, seconds] of [
      ...WEBHOOK_RETRY_SECONDS.map((s, i) => [i + 1, s]),
      [WEBHOOK_RETRY_SECONDS.length + 1, 0],
    ]) {
      const { run, hidden } = handler();
      expect(await run(sqsEvent([envelope(event())], tries))).toEqual({
        batchItemFailures: [{ itemIdentifier: 'm0' }],
      });
      expect(hidden).toEqual([{ receiptHandle: 'r0', seconds }]);
    }
    expect(WEBHOOK_RETRY_SECONDS.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(24 * 3600);
  });

  it('counts no answer in time, and a refused connection, as failures to retry', async () => {
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silentServer = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
    const port = (silentServer.address() as { port: number }).port;
    const slow = handler(`http://127.0.0.1:${port}/`, 200);
    expect((await slow.run(sqsEvent([envelope(event())]))).batchItemFailures).toHaveLength(1);
    expect(slow.hidden).toEqual([{ receiptHandle: 'r0', seconds: WEBHOOK_RETRY_SECONDS[0] }]);
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silentServer.close(() => resolve()));
    const refused = handler(`http://127.0.0.1:${port}/`);
    expect((await refused.run(sqsEvent([envelope(event())]))).batchItemFailures).toHaveLength(1);
  });

  it('sends a record that is not an smtpq event to the dead-letter queue at once', async () => {
    const before = listener.received.length;
    const { run, hidden } = handler();
    expect(await run(sqsEvent(['{"detail":{"type":"nope"}}', 'not json']))).toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }, { itemIdentifier: 'm1' }],
    });
    expect(hidden.map((h) => h.seconds)).toEqual([0, 0]);
    expect(listener.received.length).toBe(before);
  });
});
