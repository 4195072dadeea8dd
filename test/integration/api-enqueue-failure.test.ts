// When SQS refuses, nothing is stored and nothing is lost silently. The API enqueues first and writes the
// status record only after SQS took the message, so a refused enqueue leaves no ledger entry at all: the
// handler pointed at a queue that does not exist (a real SQS error from moto, not a mock) answers a single
// submit with a 503 carrying the request id and frees its Idempotency-Key, and reports each batch item SQS
// did not take as enqueue_failed, stored nowhere.
import { type AddressInfo, createServer, type Socket } from 'node:net';
import type { SendMessageBatchCommandInput, SendMessageBatchCommandOutput } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { ABANDONED_CLAIM_MS } from '../../lib/delivery/idempotency.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import {
  apiEvent,
  apiOnFreshResources,
  apiVariant,
  claimItem,
  drainQueue,
  type HandlerCore,
  ledgerIds,
  missingQueue,
  parseBody,
  recordIds,
  refuseKeyReleases,
  validRequest,
} from './api-harness.ts';

// api.handler is the handler on the queue that works.
const api = apiOnFreshResources();

const submit = (handler: HandlerCore, headers: Record<string, string> = {}) =>
  handler(apiEvent({ method: 'POST', path: '/v1/messages', body: validRequest, headers }));

const batch = (handler: HandlerCore, messages: unknown[]) =>
  handler(apiEvent({ method: 'POST', path: '/v1/messages/batch', body: { messages } }));

interface BatchBody {
  results: { id?: string; status?: string; error?: { code: string; message?: string } }[];
  queued: number;
  rejected: number;
}

describe('the queue refuses a single submit', () => {
  it('answers 503 with the request id, stores no status record and frees the Idempotency-Key', async () => {
    // Prepare
    const handed: string[] = [];
    const broken = apiVariant(api, { config: missingQueue, adjust: recordIds(handed) });

    // Act
    const failed = await submit(broken, { 'Idempotency-Key': 'retry-me' });

    // Assess: nothing of the failed request is left: no record, no claim.
    expect(failed.statusCode).toBe(503);
    const body = parseBody(failed);
    expect(body).toMatchObject({ error: 'service_unavailable' });
    expect(body.requestId).toMatch(/^req-/);
    expect(body).not.toHaveProperty('id');
    expect(handed).toHaveLength(1);
    expect(await api.ledger.get(handed[0]!)).toBeUndefined();
    expect(await ledgerIds(api.resources)).not.toContain(handed[0]);
    expect(await claimItem(api.resources, 'retry-me')).toBeUndefined();

    // A retry is a new submission.
    const retried = await submit(api.handler, { 'Idempotency-Key': 'retry-me' });
    expect(retried.statusCode).toBe(202);
    expect(retried.headers).not.toHaveProperty('idempotent-replayed');
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id)).toEqual([parseBody(retried).id]);
    expect((await api.ledger.get(parseBody(retried).id as string))?.value.idempotencyKey).toBe('retry-me');
  });

  it('answers 503 without a key too, and stores nothing', async () => {
    const handed: string[] = [];
    const broken = apiVariant(api, { config: missingQueue, adjust: recordIds(handed) });

    const failed = await submit(broken);

    expect(failed.statusCode).toBe(503);
    expect(await api.ledger.get(handed[0]!)).toBeUndefined();
  });

  it('hands out no id while a failed request could not release its key, and lets a retry take it over once abandoned', async () => {
    // Prepare: the queue refuses, and DynamoDB refuses the release of the key too.
    const handed: string[] = [];
    const stuck = apiVariant(api, {
      config: missingQueue,
      adjust: (deps) => {
        recordIds(handed)(deps);
        refuseKeyReleases(deps);
      },
    });
    const later = apiVariant(api, {
      adjust: (deps) => {
        deps.now = () => new Date(Date.now() + ABANDONED_CLAIM_MS + 60_000);
      },
    });

    // Act
    const failed = await submit(stuck, { 'Idempotency-Key': 'unreleased' });
    const held = await claimItem(api.resources, 'unreleased');
    const soon = await submit(api.handler, { 'Idempotency-Key': 'unreleased' });
    const retried = await submit(later, { 'Idempotency-Key': 'unreleased' });

    // Assess: the claim names an id that was never enqueued; it is never handed out. A retry within
    // ABANDONED_CLAIM_MS is told to retry (409); after it, the retry takes the key over as a new submission.
    expect(failed.statusCode).toBe(503);
    expect(held?.id).toBe(handed[0]);
    expect(soon.statusCode).toBe(409);
    expect(parseBody(soon)).toMatchObject({ error: 'idempotency_key_in_use' });
    expect(retried.statusCode).toBe(202);
    expect(retried.headers).not.toHaveProperty('idempotent-replayed');
    const id = parseBody(retried).id as string;
    expect(id).not.toBe(handed[0]);
    expect((await claimItem(api.resources, 'unreleased'))?.id).toBe(id);
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id)).toEqual([id]);
    expect(await api.ledger.get(handed[0]!)).toBeUndefined();
    const again = await submit(later, { 'Idempotency-Key': 'unreleased' });
    expect(parseBody(again).id).toBe(id);
  });

  it('gives up on an SQS call that never answers: 503, no record, the key freed', async () => {
    // Prepare: SQS behind a TCP server that accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const { sqs } = createAwsClients({ region: 'us-east-1', endpoint });
    const handed: string[] = [];
    const hung = apiVariant(api, {
      adjust: (deps) => {
        recordIds(handed)(deps);
        deps.queue = new SqsQueueProducer(sqs, `${endpoint}/123456789012/q`, { callTimeoutMs: 300 });
      },
    });

    try {
      // Act
      const failed = await submit(hung, { 'Idempotency-Key': 'hung-sqs' });
      const retried = await submit(api.handler, { 'Idempotency-Key': 'hung-sqs' });

      // Assess
      expect(failed.statusCode).toBe(503);
      expect(await api.ledger.get(handed[0]!)).toBeUndefined();
      expect(retried.statusCode).toBe(202);
      expect(retried.headers).not.toHaveProperty('idempotent-replayed');
      const queued = (await drainQueue(api.resources)) as QueueMessage[];
      expect(queued.map((m) => m.id)).toEqual([parseBody(retried).id]);
    } finally {
      sqs.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('the queue refuses batch items', () => {
  it('reports every valid item of a batch SQS refuses as enqueue_failed, with no id and no record', async () => {
    // Prepare
    const handed: string[] = [];
    const broken = apiVariant(api, { config: missingQueue, adjust: recordIds(handed) });

    // Act
    const response = await batch(broken, [validRequest, { ...validRequest, from: 'bad' }, validRequest]);

    // Assess
    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as unknown as BatchBody;
    expect(body.queued).toBe(0);
    expect(body.rejected).toBe(3);
    expect(body.results.map((r) => r.error?.code)).toEqual([
      'enqueue_failed',
      'validation_failed',
      'enqueue_failed',
    ]);
    for (const item of [body.results[0]!, body.results[2]!]) {
      expect(item).not.toHaveProperty('id');
      expect(item).not.toHaveProperty('status');
      expect(item.error?.message).toMatch(/could not be queued \(.+\); retry it$/);
    }
    expect(handed).toHaveLength(2);
    expect((await api.ledger.getMany(handed)).size).toBe(0);
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('stores exactly the items SQS took when it refuses some of a batch', async () => {
    // Prepare: an SQS client that withholds the entries of two messages from SendMessageBatch (so they are
    // really not enqueued) and reports them Failed, as SQS does for an entry it could not take; the other
    // entries go to moto's queue. No retries, so the producer gives up on them at once.
    const { sqs } = createAwsClients({ region: 'us-east-1', endpoint: api.resources.env.AWS_ENDPOINT_URL });
    const refused = new Set(['refused 1', 'refused 3']);
    sqs.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'SendMessageBatchCommand') return next(args);
        const input = args.input as SendMessageBatchCommandInput;
        const withheld = (input.Entries ?? []).filter((e) =>
          refused.has(JSON.parse(e.MessageBody!).request.subject),
        );
        const result = await next({
          ...args,
          input: { ...input, Entries: (input.Entries ?? []).filter((e) => !withheld.includes(e)) },
        });
        const output = result.output as SendMessageBatchCommandOutput;
        output.Failed = withheld.map((e) => ({
          Id: e.Id!,
          SenderFault: false,
          Code: 'InternalError',
          Message: 'injected',
        }));
        return result;
      },
      { step: 'initialize', name: 'refuseSomeEntries' },
    );
    const handed: string[] = [];
    const partial = apiVariant(api, {
      adjust: (deps) => {
        recordIds(handed)(deps);
        deps.queue = new SqsQueueProducer(sqs, api.resources.queueUrl, { retries: 0 });
      },
    });
    const subjects = ['taken 0', 'refused 1', 'taken 2', 'refused 3'];

    // Act
    const response = await batch(
      partial,
      subjects.map((subject) => ({ ...validRequest, subject })),
    );

    // Assess: per item, in order; the ledger and the queue hold exactly the items answered queued.
    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as unknown as BatchBody;
    expect(body.results).toEqual([
      { id: handed[0], status: 'queued' },
      { error: { code: 'enqueue_failed', message: expect.stringContaining('InternalError: injected') } },
      { id: handed[2], status: 'queued' },
      { error: { code: 'enqueue_failed', message: expect.stringContaining('InternalError: injected') } },
    ]);
    expect([body.queued, body.rejected]).toEqual([2, 2]);
    const stored = await api.ledger.getMany(handed);
    expect([...stored.keys()].sort()).toEqual([handed[0], handed[2]].sort());
    expect(stored.get(handed[0]!)?.value.subject).toBe('taken 0');
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id).sort()).toEqual([handed[0], handed[2]].sort());
    for (const m of queued) expect(m.record).toEqual(stored.get(m.id)!.value);
    sqs.destroy();
  });
});
