// The SQS event-source emulation against moto: real receives, deletes and visibility timeouts.
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type BatchReport, createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
const pollers: SqsPoller[] = [];

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: 1,
    maxReceiveCount: 5,
  });
});

afterEach(async () => {
  await Promise.all(pollers.splice(0).map((p) => p.stop()));
  await drain();
});

async function send(body: string): Promise<string> {
  const sent = await resources.clients.sqs.send(
    new SendMessageCommand({ QueueUrl: resources.queueUrl, MessageBody: body }),
  );
  return sent.MessageId!;
}

async function queueDepth(): Promise<number> {
  const { Attributes } = await resources.clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: resources.queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes!.ApproximateNumberOfMessages) +
    Number(Attributes!.ApproximateNumberOfMessagesNotVisible)
  );
}

/** Deletes whatever a test left behind, so each test starts with an empty queue. */
async function drain(): Promise<void> {
  const poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 0,
    handler: async () => {},
  });
  for (let i = 0; i < 20 && (await queueDepth()) > 0; i++) {
    if ((await poller.pollOnce()) === 0) await new Promise((r) => setTimeout(r, 500));
  }
}

function poller(handler: Parameters<typeof createSqsPoller>[0]['handler'], reports: BatchReport[] = []) {
  const p = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    region: 'us-east-1',
    waitTimeSeconds: 1,
    handler,
    onBatch: (r) => reports.push(r),
  });
  pollers.push(p);
  return p;
}

describe('SQS poller', () => {
  it('builds a Lambda SQSEvent and deletes the records not reported as failures', async () => {
    const ids = [await send('{"n":1}'), await send('{"n":2}'), await send('{"n":3}')];
    const events: SQSEvent[] = [];
    const reports: BatchReport[] = [];
    const p = poller(async (event) => {
      events.push(event);
      return {
        batchItemFailures: event.Records.filter((r) => r.body === '{"n":2}').map((r) => ({
          itemIdentifier: r.messageId,
        })),
      };
    }, reports);
    let seen = 0;
    for (let i = 0; i < 10 && seen < 3; i++) seen += await p.pollOnce();
    expect(seen).toBe(3);

    const record = events[0]!.Records[0]!;
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: resources.queueArn,
      awsRegion: 'us-east-1',
    });
    expect(record.attributes.ApproximateReceiveCount).toBe('1');
    expect(ids).toContain(record.messageId);
    expect(reports.flatMap((r) => r.deleted).sort()).toEqual([ids[0], ids[2]].sort());
    expect(reports.flatMap((r) => r.retained)).toEqual([ids[1]]);

    // The failed record comes back after its visibility timeout, received a second time.
    const again: SQSEvent[] = [];
    const p2 = poller(async (event) => void again.push(event));
    for (let i = 0; i < 20 && again.length === 0; i++) await p2.pollOnce();
    expect(again[0]!.Records.map((r) => [r.messageId, r.attributes.ApproximateReceiveCount])).toEqual([
      [ids[1], '2'],
    ]);
    expect(await queueDepth()).toBe(0);
  });

  it('keeps the whole batch when the handler throws or names a record not in the batch', async () => {
    await send('{"n":"x"}');
    const errors: unknown[] = [];
    const reports: BatchReport[] = [];
    const p = createSqsPoller({
      sqs: resources.clients.sqs,
      queueUrl: resources.queueUrl,
      waitTimeSeconds: 1,
      handler: async () => {
        throw new Error('handler crashed');
      },
      onBatch: (r) => reports.push(r),
      onError: (e) => errors.push(e),
    });
    while ((await p.pollOnce()) === 0);
    expect(reports[0]).toMatchObject({ deleted: [], wholeBatchFailed: true });
    expect((errors[0] as Error).message).toBe('handler crashed');

    const p2 = poller(
      async () => ({ batchItemFailures: [{ itemIdentifier: 'not-in-this-batch' }] }),
      reports,
    );
    while ((await p2.pollOnce()) === 0);
    expect(reports[1]).toMatchObject({ deleted: [], wholeBatchFailed: true });
    expect(await queueDepth()).toBe(1);
  });

  it('start() polls in the background and stop() ends cleanly after the batch in progress', async () => {
    const reports: BatchReport[] = [];
    const p = poller(async () => undefined, reports);
    p.start();
    const id = await send('{"n":"bg"}');
    for (let i = 0; i < 40 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 250));
    await p.stop();
    expect(reports.flatMap((r) => r.deleted)).toEqual([id]);
    expect(await queueDepth()).toBe(0);
  });
});
