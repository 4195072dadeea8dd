// When the ledger write fails after SQS took the message, the API still answers 202: the message is on the
// queue and carries its initial status record, which the worker writes when it finds none; answering an
// error would make the client send it twice. The failure is real: the handler's LEDGER_TABLE (or only its
// status store) points at a DynamoDB table that does not exist, and moto answers ResourceNotFoundException.
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
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
  ledgerOnMissingTable,
  missingTable,
  parseBody,
  validRequest,
} from './api-harness.ts';

const api = apiOnFreshResources({ MESSAGE_ID_DOMAIN: 'mail.test' });

const submit = (handler: HandlerCore, body: unknown = validRequest, headers: Record<string, string> = {}) =>
  handler(apiEvent({ method: 'POST', path: '/v1/messages', body, headers }));

type InlineMessage = Extract<QueueMessage, { request: unknown }>;

describe('the ledger write fails after the enqueue', () => {
  it('answers 202, and the queue message carries the record the ledger does not have', async () => {
    // Prepare: the whole API on a table that does not exist.
    const noTable = apiVariant(api, { config: missingTable });
    await expect(
      api.resources.clients.dynamodb.send(
        new DescribeTableCommand({ TableName: `${api.resources.table}-missing` }),
      ),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });

    // Act
    const response = await submit(noTable, { ...validRequest, subject: 'unrecorded' });

    // Assess
    expect(response.statusCode).toBe(202);
    const { id, status } = parseBody(response) as { id: string; status: string };
    expect(status).toBe('queued');
    expect(await api.ledger.get(id)).toBeUndefined();
    expect(await ledgerIds(api.resources)).not.toContain(id);
    const queued = (await drainQueue(api.resources)) as InlineMessage[];
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ v: 1, id, request: { subject: 'unrecorded' } });
    expect(queued[0]!.record).toMatchObject({
      id,
      state: 'queued',
      subject: 'unrecorded',
      messageId: `<${id}@mail.test>`,
      attempts: 0,
      transcripts: [],
    });
    expect(queued[0]!.record.recipients.map((r) => r.address)).toEqual([
      'bob@example.org',
      'carol@example.org',
      'dave@example.org',
    ]);

    // What the worker does with it: the record from the queue message is a complete ledger entry.
    await api.ledger.create(queued[0]!.record);
    const shown = await api.handler(apiEvent({ method: 'GET', path: `/v1/messages/${id}` }));
    expect(shown.statusCode).toBe(200);
    expect(parseBody(shown)).toMatchObject({ id, state: 'queued', subject: 'unrecorded' });
  });

  it('answers 202 for every batch item on the queue, each message carrying its record', async () => {
    const noTable = apiVariant(api, { config: missingTable });
    const subjects = ['b0', 'b1', 'b2'];

    const response = await noTable(
      apiEvent({
        method: 'POST',
        path: '/v1/messages/batch',
        body: { messages: subjects.map((subject) => ({ ...validRequest, subject })) },
      }),
    );

    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as { results: { id: string; status: string }[]; queued: number };
    expect(body.queued).toBe(3);
    const ids = body.results.map((r) => r.id);
    expect(body.results.map((r) => r.status)).toEqual(['queued', 'queued', 'queued']);
    expect((await api.ledger.getMany(ids)).size).toBe(0);
    const queued = (await drainQueue(api.resources)) as InlineMessage[];
    expect(queued.map((m) => [m.id, m.record.id, m.record.subject]).sort()).toEqual(
      ids.map((id, n) => [id, id, subjects[n]]).sort(),
    );
  });

  it('keeps the Idempotency-Key: a retry waits for the record (409), then replays the id', async () => {
    // Prepare: status records on a missing table, the idempotency keys on the real one.
    const noLedger = apiVariant(api, { adjust: ledgerOnMissingTable(api) });
    const headers = { 'Idempotency-Key': 'ledger-down-1' };

    // Act 1: the submit, and a retry before any worker has written the record.
    const first = await submit(noLedger, validRequest, headers);
    const early = await submit(api.handler, validRequest, headers);

    // Assess 1: the message is queued once; its id is not handed out while it has no record.
    expect(first.statusCode).toBe(202);
    const id = parseBody(first).id as string;
    expect((await claimItem(api.resources, 'ledger-down-1'))?.id).toBe(id);
    expect(early.statusCode).toBe(409);
    expect(parseBody(early)).toMatchObject({ error: 'idempotency_key_in_use' });
    const queued = (await drainQueue(api.resources)) as InlineMessage[];
    expect(queued.map((m) => m.id)).toEqual([id]);
    expect(queued[0]!.record).toMatchObject({ idempotencyKey: 'ledger-down-1' });
    expect(queued[0]!.record.requestFingerprint).toMatch(/^[0-9a-f]{64}$/);

    // Act 2: the worker writes the record from the queue message; the client retries.
    await api.ledger.create(queued[0]!.record);
    const replay = await submit(api.handler, validRequest, headers);
    const reuse = await submit(api.handler, { ...validRequest, subject: 'other' }, headers);

    // Assess 2
    expect(replay.statusCode).toBe(202);
    expect(parseBody(replay)).toEqual({ id, status: 'queued' });
    expect(replay.headers).toMatchObject({ 'idempotent-replayed': 'true' });
    expect(reuse.statusCode).toBe(422);
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('leaves a record the worker wrote first as it is (the API only creates)', async () => {
    // Prepare: the worker is faster than the API: it writes the record from the queue message and claims it
    // before the API's own write.
    let workerVersion: string | undefined;
    const slowApi = apiVariant(api, {
      adjust: (deps) => {
        const queue = deps.queue;
        deps.queue = {
          send: async (message) => {
            const sent = await queue.send(message);
            const created = await api.ledger.create(message.record);
            const claimed = await api.ledger.update(
              {
                ...created.value,
                state: 'sending',
                attempts: 1,
                lease: { owner: 'w', until: '2099-01-01T00:00:00Z' },
              },
              created.version,
            );
            workerVersion = claimed.version;
            return sent;
          },
          sendBatch: (messages) => queue.sendBatch(messages),
        };
      },
    });

    // Act
    const response = await submit(slowApi);

    // Assess
    expect(response.statusCode).toBe(202);
    const stored = await api.ledger.get(parseBody(response).id as string);
    expect(stored).toMatchObject({ version: workerVersion, value: { state: 'sending', attempts: 1 } });
    await drainQueue(api.resources);
  });

  // A claim whose record is still missing ABANDONED_CLAIM_MS later may belong to a request that enqueued and
  // then failed before its ledger write, its message waiting in a backed-up queue: the claim is marked
  // enqueued right after the send, and a marked claim is never taken over.
  it('never enqueues a key’s request twice, even when its record is still missing after ABANDONED_CLAIM_MS', async () => {
    // Prepare: the submit enqueued, its ledger write failed, and no worker has taken the message yet.
    const noLedger = apiVariant(api, { adjust: ledgerOnMissingTable(api) });
    const later = apiVariant(api, {
      adjust: (deps) => {
        deps.now = () => new Date(Date.now() + ABANDONED_CLAIM_MS + 60_000);
      },
    });
    const headers = { 'Idempotency-Key': 'ledger-down-late' };
    const first = await submit(noLedger, validRequest, headers);
    expect(first.statusCode).toBe(202);

    // Act: the client retries (its first answer was lost) after ABANDONED_CLAIM_MS.
    const retry = await submit(later, validRequest, headers);

    // Assess: one key, one message on the queue.
    const queued = (await drainQueue(api.resources)) as InlineMessage[];
    expect(queued.map((m) => m.id)).toEqual([parseBody(first).id]);
    expect(retry.statusCode).not.toBe(202);
  });
});
