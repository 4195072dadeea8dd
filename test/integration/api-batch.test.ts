// POST /v1/messages/batch against moto: per-item results in order, every valid item on SQS with its status
// record, invalid items reported with their field paths and never enqueued.
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import { apiEvent, apiOnFreshResources, drainQueue, parseBody, validRequest } from './api-harness.ts';

const api = apiOnFreshResources();

const batch = (body: unknown, headers: Record<string, string> = {}) =>
  api.handler(apiEvent({ method: 'POST', path: '/v1/messages/batch', body, headers }));

async function statusRecord(id: string): Promise<StatusRecord> {
  const object = await api.resources.clients.s3.send(
    new GetObjectCommand({ Bucket: api.resources.bucket, Key: `messages/${id}.json` }),
  );
  return JSON.parse(await object.Body!.transformToString()) as StatusRecord;
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

    const queued = (await drainQueue(api.resources)) as Array<{ id: string; request: { subject: string } }>;
    expect(queued.map((m) => [m.id, m.request.subject]).sort()).toEqual(
      [
        [first!.id, 'first'],
        [third!.id, 'third'],
      ].sort(),
    );
    expect((await statusRecord(first!.id!)).state).toBe('queued');
  });

  it('enqueues 25 messages (three SendMessageBatch calls) with 25 status records', async () => {
    const messages = Array.from({ length: 25 }, (_, n) => ({ ...validRequest, subject: `message ${n}` }));

    const response = await batch({ messages });

    expect(response.statusCode).toBe(202);
    const body = parseBody(response) as unknown as Results;
    expect(body.queued).toBe(25);
    const ids = body.results.map((r) => r.id!);
    expect(new Set(ids).size).toBe(25);
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id).sort()).toEqual([...ids].sort());
    const records = await Promise.all(ids.map(statusRecord));
    expect(records.map((r) => r.subject)).toEqual(messages.map((m) => m.subject));
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
