// SqsQueueProducer against moto: batches are split by count and size, every entry gets a result, entries
// SQS fails are retried, and visibility changes (one at a time or in batches) really delay redelivery.

import { type AddressInfo, createServer, type Socket } from 'node:net';
import {
  ReceiveMessageCommand,
  type SendMessageBatchCommandInput,
  type SendMessageBatchCommandOutput,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createAwsClients, SqsQueueProducer, SqsTimeoutError } from '../../lib/aws/index.ts';
import { MAX_VISIBILITY_SECONDS } from '../../lib/delivery/backoff.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import { createTestResources, TEST_REGION, type TestResources } from '../support/moto.ts';

const endpoint = inject('motoEndpoint');

async function drain(sqs: SQSClient, queueUrl: string, expected: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let round = 0; round < 20 && bodies.length < expected; round++) {
    const got = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: 60,
      }),
    );
    for (const message of got.Messages ?? []) bodies.push(message.Body!);
  }
  return bodies;
}

/** The initial status record a queue message carries (the worker writes it if the API could not). */
const initialRecord = (id: string): StatusRecord => ({
  id,
  state: 'queued',
  createdAt: '2031-01-02T03:04:05.000Z',
  updatedAt: '2031-01-02T03:04:05.000Z',
  messageId: `<${id}@smtpq.local>`,
  from: 'alice@example.com',
  recipients: [
    { address: 'bob@example.org', kind: 'to', state: 'queued', updatedAt: '2031-01-02T03:04:05.000Z' },
  ],
  attempts: 0,
  transcripts: [],
});

const message = (id: string, request: unknown = { subject: id }): QueueMessage => ({
  v: 1,
  id,
  record: initialRecord(id),
  request,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Receives up to `count` messages (leaving them in flight for `visibility` seconds); their receipt handles. */
async function receive(sqs: SQSClient, queueUrl: string, count: number, visibility = 0): Promise<string[]> {
  const handles: string[] = [];
  for (let round = 0; round < 20 && handles.length < count; round++) {
    const got = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: Math.min(10, count - handles.length),
        WaitTimeSeconds: 1,
        VisibilityTimeout: visibility,
      }),
    );
    for (const m of got.Messages ?? []) handles.push(m.ReceiptHandle!);
  }
  return handles;
}

/**
 * moto never fails a batch entry on its own side (it only knows sender faults), so this client makes SQS's
 * partial failure happen for real: the first `times` calls withhold the entries whose id is in `ids` from
 * the request (so they are NOT enqueued) and report them Failed with SenderFault false, as SQS does.
 */
function sqsFailingEntries(
  ids: Set<string>,
  times: number,
  senderFault = false,
): { sqs: SQSClient; batchCalls: () => number } {
  const { sqs } = createAwsClients({ region: TEST_REGION, endpoint });
  let calls = 0;
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'SendMessageBatchCommand') return next(args);
      if (calls++ >= times) return next(args);
      const input = args.input as SendMessageBatchCommandInput;
      const withheld = (input.Entries ?? []).filter((e) => ids.has(JSON.parse(e.MessageBody!).id));
      const sent = (input.Entries ?? []).filter((e) => !withheld.includes(e));
      const failed = withheld.map((e) => ({
        Id: e.Id!,
        SenderFault: senderFault,
        Code: 'InternalError',
        Message: 'injected',
      }));
      // Nothing left to send: answer as SQS would for a call whose every entry failed.
      if (sent.length === 0)
        return { response: {}, output: { $metadata: {}, Successful: [], Failed: failed } };
      const result = await next({ ...args, input: { ...input, Entries: sent } });
      const output = result.output as SendMessageBatchCommandOutput;
      output.Failed = [...(output.Failed ?? []), ...failed];
      return result;
    },
    { step: 'initialize', name: 'failSomeEntries' },
  );
  return { sqs, batchCalls: () => calls };
}

/**
 * moto does not check the characters of a message body; real SQS refuses the whole message
 * (InvalidMessageContents) for any character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
 * #x10000-#x10FFFF. This client applies that rule before moto sees the call.
 */
function sqsCheckingCharacters(): SQSClient {
  const { sqs } = createAwsClients({ region: TEST_REGION, endpoint });
  const refused = (body: string) =>
    [...body].some((char) => {
      const c = char.codePointAt(0)!;
      const allowed =
        c === 0x9 ||
        c === 0xa ||
        c === 0xd ||
        (c >= 0x20 && c <= 0xd7ff) ||
        (c >= 0xe000 && c <= 0xfffd) ||
        c >= 0x10000;
      return !allowed;
    });
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { MessageBody?: string; Entries?: { MessageBody?: string }[] };
      const bodies = [input.MessageBody, ...(input.Entries ?? []).map((e) => e.MessageBody)];
      if (bodies.some((body) => body !== undefined && refused(body))) {
        throw Object.assign(new Error(`${context.commandName}: invalid characters in the message body`), {
          name: 'InvalidMessageContents',
        });
      }
      return next(args);
    },
    { step: 'initialize', name: 'checkSqsCharacters' },
  );
  return sqs;
}

// Characters SQS refuses raw (U+FFFE, U+FFFF, lone surrogates) beside ones it takes (astral, U+FFFD, DEL).
const awkwardRequest = {
  subject: 'noncharacters \uFFFE \uFFFF',
  text: 'lone \uD800 and \uDFFF, a pair \u{1F600}, \uFFFD, \u007F, controls \u0000\u001B',
  headers: { 'X-Odd-\uFFFF': 'value \uDBFF' },
};

describe('SqsQueueProducer', () => {
  let resources: TestResources;
  beforeAll(async () => {
    resources = await createTestResources(endpoint);
  });

  it('sends one message, with the initial record it carries, as its JSON body', async () => {
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);

    const messageId = await producer.send(message('single'));

    expect(messageId).not.toBe('');
    expect((await drain(own.clients.sqs, own.queueUrl, 1)).map((b) => JSON.parse(b))).toEqual([
      message('single'),
    ]);
  });

  it('sends requests with characters SQS refuses raw, and they come back as the exact same request', async () => {
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(sqsCheckingCharacters(), own.queueUrl);

    const single = await producer.send(message('awkward-single', awkwardRequest));
    const batch = await producer.sendBatch([message('awkward-batch', awkwardRequest)]);

    expect(single).not.toBe('');
    expect(batch).toEqual([{ ok: true, messageId: expect.any(String) }]);
    const received = (await drain(own.clients.sqs, own.queueUrl, 2)).map(
      (b) => JSON.parse(b) as QueueMessage,
    );
    expect(received.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      message('awkward-batch', awkwardRequest),
      message('awkward-single', awkwardRequest),
    ]);
  });

  it('sends a batch of 25 in calls of 10 and reports a result per entry, in order', async () => {
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    const messages = Array.from({ length: 25 }, (_, i) => message(`batch-${i}`));

    const results = await producer.sendBatch(messages);

    expect(results).toHaveLength(25);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(new Set(results.map((r) => r.ok && r.messageId)).size).toBe(25);
    const received = (await drain(own.clients.sqs, own.queueUrl, 25)).map((b) => JSON.parse(b).id);
    expect(received.sort()).toEqual(messages.map((m) => m.id).sort());
  });

  it('splits by size so ten large messages never exceed the 1 MiB batch limit', async () => {
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    const messages = Array.from({ length: 10 }, (_, i) =>
      message(`large-${i}`, { text: 'x'.repeat(300_000) }),
    );

    const results = await producer.sendBatch(messages);

    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(await drain(own.clients.sqs, own.queueUrl, 10)).toHaveLength(10);
  });

  it('retries entries SQS failed and enqueues them exactly once', async () => {
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(sqsFailingEntries(new Set(['b-3', 'b-12']), 2).sqs, own.queueUrl, {
      baseDelayMs: 10,
    });
    const messages = Array.from({ length: 15 }, (_, i) => message(`b-${i}`));

    const results = await producer.sendBatch(messages);

    expect(results.filter((r) => !r.ok)).toEqual([]);
    const received = (await drain(own.clients.sqs, own.queueUrl, 15)).map((b) => JSON.parse(b).id);
    expect(received.sort()).toEqual(messages.map((m) => m.id).sort());
  });

  it('reports, never drops, entries that still fail after the retries', async () => {
    const producer = new SqsQueueProducer(sqsFailingEntries(new Set(['f-1']), 100).sqs, resources.queueUrl, {
      retries: 2,
      baseDelayMs: 10,
    });

    const results = await producer.sendBatch([message('f-0'), message('f-1'), message('f-2')]);

    expect(results[0]?.ok).toBe(true);
    expect(results[1]).toEqual({ ok: false, code: 'InternalError', error: 'injected' });
    expect(results[2]?.ok).toBe(true);
  });

  it('does not retry an entry SQS blames on the sender', async () => {
    const { sqs, batchCalls } = sqsFailingEntries(new Set(['s-0']), 100, true);
    const producer = new SqsQueueProducer(sqs, resources.queueUrl, { baseDelayMs: 10 });

    const results = await producer.sendBatch([message('s-0')]);

    expect(results[0]).toMatchObject({ ok: false, code: 'InternalError' });
    expect(batchCalls()).toBe(1);
  });

  it('reports every entry of a call that SQS rejects as a whole', async () => {
    const producer = new SqsQueueProducer(resources.clients.sqs, `${resources.queueUrl}-missing`);

    const results = await producer.sendBatch([message('w-0'), message('w-1')]);

    expect(results).toHaveLength(2);
    for (const result of results) expect(result.ok).toBe(false);
  });

  it('fails calls to an SQS endpoint that never answers after callTimeoutMs, for send and sendBatch', async () => {
    // Prepare: a TCP server that accepts connections and never says a word.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const { sqs } = createAwsClients({ region: TEST_REGION, endpoint: `http://127.0.0.1:${port}` });
    const producer = new SqsQueueProducer(sqs, `http://127.0.0.1:${port}/123456789012/q`, {
      callTimeoutMs: 300,
    });

    try {
      // Act
      const [sent, batch] = await Promise.allSettled([
        producer.send(message('hung-1')),
        producer.sendBatch(Array.from({ length: 25 }, (_, i) => message(`hung-b${i}`))),
      ]);

      // Assess: the single send rejects; every batch entry is reported.
      expect(sent.status === 'rejected' && sent.reason).toBeInstanceOf(SqsTimeoutError);
      const timedOut = { ok: false, code: 'TimeoutError', error: 'SQS did not answer within 300 ms' };
      expect(batch).toEqual({ status: 'fulfilled', value: Array(25).fill(timedOut) });
    } finally {
      sqs.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('has the calls of one batch in flight side by side, up to concurrentCalls', async () => {
    // Prepare: count the SendMessageBatch calls in flight at once.
    const own = await createTestResources(endpoint);
    const { sqs } = createAwsClients({ region: TEST_REGION, endpoint });
    let inFlight = 0;
    let mostInFlight = 0;
    sqs.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'SendMessageBatchCommand') return next(args);
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        try {
          return await next(args);
        } finally {
          inFlight--;
        }
      },
      { step: 'initialize', name: 'countInFlight' },
    );
    const messages = Array.from({ length: 45 }, (_, i) => message(`side-${i}`));

    // Act
    const results = await new SqsQueueProducer(sqs, own.queueUrl, { concurrentCalls: 3 }).sendBatch(messages);

    // Assess: five calls, three at a time at most, every message on the queue.
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(mostInFlight).toBe(3);
    const received = (await drain(own.clients.sqs, own.queueUrl, 45)).map((b) => JSON.parse(b).id);
    expect(received.sort()).toEqual(messages.map((m) => m.id).sort());
  });

  it('changeVisibility(0) makes a received message visible again at once', async () => {
    const own = await createTestResources(endpoint, { visibilityTimeoutSeconds: 600 });
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.send(message('v-1'));
    const first = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, WaitTimeSeconds: 1 }),
    );
    const receiptHandle = first.Messages![0]!.ReceiptHandle!;

    await producer.changeVisibility(receiptHandle, 0);

    const again = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, WaitTimeSeconds: 1, AttributeNames: ['All'] }),
    );
    expect(again.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe('2');
  });

  it('changeVisibility(60) hides the message', async () => {
    const own = await createTestResources(endpoint, { visibilityTimeoutSeconds: 0 });
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.send(message('v-2'));
    const first = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, WaitTimeSeconds: 1, VisibilityTimeout: 0 }),
    );

    await producer.changeVisibility(first.Messages![0]!.ReceiptHandle!, 60);

    const again = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, WaitTimeSeconds: 1 }),
    );
    expect(again.Messages ?? []).toEqual([]);
  });

  it('changeVisibility clamps a deferral past 12 h to the back-off module’s MAX_VISIBILITY_SECONDS', async () => {
    const own = await createTestResources(endpoint, { visibilityTimeoutSeconds: 0 });
    const asked: number[] = [];
    own.clients.sqs.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'ChangeMessageVisibilityCommand') {
          asked.push((args.input as { VisibilityTimeout: number }).VisibilityTimeout);
        }
        return next(args);
      },
      { step: 'initialize', name: 'recordVisibility' },
    );
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.send(message('v-3'));
    const first = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, WaitTimeSeconds: 1, VisibilityTimeout: 0 }),
    );

    // SQS counts the 12 h from the receive, so even the clamped value is refused once any time has passed
    // (the worker asks for at most MAX_DEFERRAL_SECONDS for that reason): only the value sent is asserted.
    await producer
      .changeVisibility(first.Messages![0]!.ReceiptHandle!, 2 * MAX_VISIBILITY_SECONDS)
      .catch((error: Error) => expect(error.name).toBe('InvalidParameterValue'));

    expect(asked).toEqual([43_200]);
  });
  it('changeVisibilityBatch hides 23 received messages in calls of at most 10, reporting no failure', async () => {
    // Prepare: 23 messages received for 2 s (they would come back after that).
    const own = await createTestResources(endpoint);
    const entriesPerCall: number[] = [];
    own.clients.sqs.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'ChangeMessageVisibilityBatchCommand') {
          entriesPerCall.push((args.input as { Entries: unknown[] }).Entries.length);
        }
        return next(args);
      },
      { step: 'initialize', name: 'countVisibilityEntries' },
    );
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.sendBatch(Array.from({ length: 23 }, (_, i) => message(`cv-${i}`)));
    const handles = await receive(own.clients.sqs, own.queueUrl, 23, 2);
    expect(handles).toHaveLength(23);

    // Act
    const failed = await producer.changeVisibilityBatch(
      handles.map((receiptHandle) => ({ receiptHandle, seconds: 600 })),
    );

    // Assess: three calls, every change made, nothing comes back once the 2 s are over.
    expect(failed).toEqual([]);
    expect(entriesPerCall.sort((a, b) => b - a)).toEqual([10, 10, 3]);
    await sleep(2500);
    const again = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect(again.Messages ?? []).toEqual([]);
  });

  it('changeVisibilityBatch(0) makes received messages visible again at once', async () => {
    const own = await createTestResources(endpoint, { visibilityTimeoutSeconds: 600 });
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.sendBatch(Array.from({ length: 12 }, (_, i) => message(`cv0-${i}`)));
    const handles = await receive(own.clients.sqs, own.queueUrl, 12, 600);

    const failed = await producer.changeVisibilityBatch(
      handles.map((receiptHandle) => ({ receiptHandle, seconds: 0 })),
    );

    expect(failed).toEqual([]);
    expect(await drain(own.clients.sqs, own.queueUrl, 12)).toHaveLength(12);
  });

  it('changeVisibilityBatch reports a bad receipt handle with SQS’s reason and changes the others', async () => {
    // Prepare: 12 received messages, and one handle SQS never issued, placed in the second call.
    const own = await createTestResources(endpoint);
    const producer = new SqsQueueProducer(own.clients.sqs, own.queueUrl);
    await producer.sendBatch(Array.from({ length: 12 }, (_, i) => message(`bad-${i}`)));
    const handles = await receive(own.clients.sqs, own.queueUrl, 12, 2);
    const bogus = 'not-a-receipt-handle';
    const changes = [...handles.slice(0, 11), bogus, handles[11]!].map((receiptHandle) => ({
      receiptHandle,
      seconds: 600,
    }));

    // Act
    const failed = await producer.changeVisibilityBatch(changes);

    // Assess: only the bogus handle is reported; the 12 real ones stay hidden past their 2 s.
    expect(failed).toEqual([
      { receiptHandle: bogus, error: expect.stringMatching(/^ReceiptHandleIsInvalid: /) },
    ]);
    await sleep(2500);
    const again = await own.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: own.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect(again.Messages ?? []).toEqual([]);
  });

  it('changeVisibilityBatch reports every entry of a call SQS rejects as a whole, and no change at all for none', async () => {
    const producer = new SqsQueueProducer(resources.clients.sqs, `${resources.queueUrl}-missing`);
    const changes = Array.from({ length: 12 }, (_, i) => ({ receiptHandle: `h-${i}`, seconds: 30 }));

    const failed = await producer.changeVisibilityBatch(changes);

    expect(failed.map((f) => f.receiptHandle)).toEqual(changes.map((c) => c.receiptHandle));
    for (const f of failed) expect(f.error).toMatch(/QueueDoesNotExist|NonExistentQueue/);
    expect(await producer.changeVisibilityBatch([])).toEqual([]);
  });
});
