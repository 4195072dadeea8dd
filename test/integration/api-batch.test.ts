// POST /v1/messages/batch against moto: per-item results in order, every valid item on SQS carrying its
// initial record and with the same record in the ledger, invalid items reported with their field paths and
// stored nowhere. (Items SQS refuses: api-enqueue-failure.test.ts; a failing ledger: api-ledger-failure.)
import { describe, expect, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import {
  apiEvent,
  apiOnFreshResources,
  apiVariant,
  drainQueue,
  ledgerIds,
  parseBody,
  recordIds,
  validRequest,
} from './api-harness.ts';

const api = apiOnFreshResources();

const batch = (body: unknown, headers: Record<string, string> = {}) =>
  api.handler(apiEvent({ method: 'POST', path: '/v1/messages/batch', body, headers }));

async function statusRecord(id: string): Promise<StatusRecord> {
  const stored = await api.ledger.get(id);
  expect(stored, `status record ${id}`).toBeDefined();
  return stored!.value;
}

interface Results {
  results: Array<{ id?: string; status?: string; error?: { code: string; issues?: { path: string }[] } }>;
  queued: number;
  rejected: number;
}

describe('POST /v1/messages/batch', () => {
  it('answers per item in order: valid items queued, invalid ones with their issues', async () => {
    // Prepare
    const messages = [
      { ...validRequest, subject: 'first' },
      { ...validRequest, from: 'nobody' },
      { ...validRequest, subject: 'third' },
      { to: ['x@example.org'] },
    ];

    // Act
    const response = await batch({ messages });

    // Assess
    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as unknown as Results;
    expect(body.queued).toBe(2);
    expect(body.rejected).toBe(2);
    const [first, second, third, fourth] = body.results;
    expect(first).toMatchObject({ status: 'queued' });
    expect(third).toMatchObject({ status: 'queued' });
    expect(second?.error?.code).toBe('validation_failed');
    expect(second?.error?.issues?.map((i) => i.path)).toEqual(['from']);
    expect(fourth?.error?.issues?.map((i) => i.path)).toContain('from');
    expect(second?.id).toBeUndefined();

    const queued = (await drainQueue(api.resources)) as Array<{
      id: string;
      record: StatusRecord;
      request: { subject: string };
    }>;
    expect(queued.map((m) => [m.id, m.request.subject]).sort()).toEqual(
      [
        [first!.id, 'first'],
        [third!.id, 'third'],
      ].sort(),
    );
    for (const message of queued) {
      const record = await statusRecord(message.id);
      expect(record).toMatchObject({ state: 'queued', subject: message.request.subject });
      expect(message.record).toEqual(record);
    }
  });

  it('stores nothing for the invalid items of a batch', async () => {
    const handed: string[] = [];
    const counting = apiVariant(api, { adjust: recordIds(handed) });
    const before = await ledgerIds(api.resources);

    const response = await counting(
      apiEvent({
        method: 'POST',
        path: '/v1/messages/batch',
        body: { messages: [{ ...validRequest, from: 'nobody' }, validRequest, { to: [] }] },
      }),
    );

    const body = parseBody(response) as unknown as Results;
    expect(body.results.map((r) => r.error?.code ?? r.status)).toEqual([
      'validation_failed',
      'queued',
      'validation_failed',
    ]);
    // Ids go to valid items only, and only those reach the ledger and the queue.
    expect(handed).toEqual([body.results[1]!.id]);
    expect((await ledgerIds(api.resources)).filter((id) => !before.includes(id))).toEqual(handed);
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual(handed);
  });

  it('enqueues 60 messages with 60 status records (several SendMessageBatch and BatchWriteItem calls)', async () => {
    const messages = Array.from({ length: 60 }, (_, n) => ({ ...validRequest, subject: `message ${n}` }));

    const response = await batch({ messages });

    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as unknown as Results;
    expect(body.queued).toBe(60);
    const ids = body.results.map((r) => r.id!);
    expect(new Set(ids).size).toBe(60);
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id).sort()).toEqual([...ids].sort());
    const records = await Promise.all(ids.map(statusRecord));
    expect(records.map((r) => r.subject)).toEqual(messages.map((m) => m.subject));
    const read = await api.ledger.getMany(ids);
    expect(read.size).toBe(60);
  });

  it.each([
    ['an empty list', { messages: [] }, 'messages'],
    ['more than 100 messages', { messages: Array(101).fill(validRequest) }, 'messages'],
    ['a missing list', { message: [validRequest] }, 'message'],
    ['a list instead of the envelope', [validRequest], ''],
  ])('answers 400 for %s, enqueueing nothing', async (_name, body, path) => {
    const response = await batch(body);

    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({ error: 'validation_failed', issues: [{ path }] });
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('refuses an Idempotency-Key on a batch instead of ignoring it', async () => {
    const response = await batch({ messages: [validRequest] }, { 'Idempotency-Key': 'k1' });

    expect(response.statusCode).toBe(400);
    expect(await drainQueue(api.resources)).toEqual([]);
  });
});
