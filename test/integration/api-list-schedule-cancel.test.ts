// GET /v1/messages (the list, from the ledger's state index), sendAt (scheduled messages) and
// POST /v1/messages/{id}/cancel, through the API handler against moto.
import { beforeAll, describe, expect, it } from 'vitest';
import type { MessageSummary } from '../../functions/api/list.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { apiEvent, apiOnFreshResources, drainQueue, parseBody, validRequest } from './api-harness.ts';

const api = apiOnFreshResources();

const post = (path: string, body?: unknown) => api.handler(apiEvent({ method: 'POST', path, body }));
const list = async (query: Record<string, string> = {}) => {
  const response = await api.handler(apiEvent({ method: 'GET', path: '/v1/messages', query }));
  return { status: response.statusCode, body: parseBody(response) };
};
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

async function submit(extra: Record<string, unknown> = {}): Promise<string> {
  const response = await post('/v1/messages', { ...validRequest, ...extra });
  expect(response.statusCode, response.body).toBe(202);
  return parseBody(response).id as string;
}

/** Writes `change` over the current record at the version read, as a worker does. */
async function workerWrites(id: string, change: (record: StatusRecord) => StatusRecord): Promise<void> {
  const current = (await api.ledger.get(id))!;
  await api.ledger.update(change(current.value), current.version);
}

describe('GET /v1/messages', () => {
  const ids: string[] = [];
  beforeAll(async () => {
    // Oldest first: a, b, a, scheduled a, b (ids are time-ordered, created a few ms apart).
    for (const [campaign, sendAt] of [['a'], ['b'], ['a'], ['a', inAnHour()], ['b']] as const) {
      ids.push(
        await submit({ subject: `campaign ${campaign}`, tags: { campaign }, ...(sendAt ? { sendAt } : {}) }),
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await drainQueue(api.resources);
    // One of them sent: its recipients delivered.
    await workerWrites(ids[0]!, (r) => ({
      ...r,
      state: 'sent',
      recipients: r.recipients.map((x) => ({ ...x, state: 'delivered' })),
    }));
  });
  const newestFirst = () => [...ids].reverse();

  it('lists every message newest first with its recipients counted', async () => {
    const { status, body } = await list();

    expect(status).toBe(200);
    const data = body.data as MessageSummary[];
    expect(data.map((m) => m.id)).toEqual(newestFirst());
    expect(body.nextCursor).toBeNull();
    expect(data.at(-1)).toMatchObject({
      id: ids[0],
      state: 'sent',
      subject: 'campaign a',
      tags: { campaign: 'a' },
      recipients: { queued: 0, delivered: 3, deferred: 0, failed: 0, cancelled: 0 },
    });
    expect(data[1]).toMatchObject({ id: ids[3], state: 'scheduled', sendAt: expect.any(String) });
    expect(data[0]!.recipients).toMatchObject({ queued: 3, delivered: 0 });
  });

  it('filters by state and by tag', async () => {
    expect(((await list({ state: 'scheduled' })).body.data as MessageSummary[]).map((m) => m.id)).toEqual([
      ids[3],
    ]);
    expect(((await list({ state: 'sent' })).body.data as MessageSummary[]).map((m) => m.id)).toEqual([
      ids[0],
    ]);
    const tagged = (await list({ tag: 'campaign:a' })).body.data as MessageSummary[];
    expect(tagged.map((m) => m.id)).toEqual([ids[3], ids[2], ids[0]]);
    const both = (await list({ tag: 'campaign:a', state: 'queued' })).body.data as MessageSummary[];
    expect(both.map((m) => m.id)).toEqual([ids[2]]);
  });

  it('pages with an opaque cursor: every message once, in order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { status, body } = await list({ limit: '2', ...(cursor ? { cursor } : {}) });
      expect(status).toBe(200);
      expect((body.data as unknown[]).length).toBeLessThanOrEqual(2);
      seen.push(...(body.data as MessageSummary[]).map((m) => m.id));
      cursor = body.nextCursor as string | null;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(newestFirst());
    expect(pages).toBe(3);
  });

  it('bounds by creation time', async () => {
    const record = async (id: string) => (await api.ledger.get(id))!.value;
    const since = (await record(ids[1]!)).createdAt;
    const until = (await record(ids[3]!)).createdAt;
    const { body } = await list({ since, until });
    expect((body.data as MessageSummary[]).map((m) => m.id)).toEqual([ids[3], ids[2], ids[1]]);
  });

  it.each([
    [{ limit: '0' }, 'limit'],
    [{ limit: '101' }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ state: 'lost' }, 'state'],
    [{ tag: 'campaign' }, 'tag'],
    [{ since: 'yesterday' }, 'since'],
    [{ until: '2026-13-01T00:00:00Z' }, 'until'],
    [{ since: '2026-12-02T00:00:00Z', until: '2026-12-01T00:00:00Z' }, 'until'],
    [{ cursor: 'not-one-of-ours' }, 'cursor'],
    [{ sort: 'asc' }, 'sort'],
  ])('answers 400 naming the parameter for %o', async (query, parameter) => {
    const { status, body } = await list(query);
    expect(status).toBe(400);
    expect(body).toMatchObject({ error: 'bad_request', issues: [{ path: parameter }] });
  });
});

describe('sendAt', () => {
  it('schedules a message: 202 scheduled, the record scheduled with its sendAt, nothing receivable yet', async () => {
    await drainQueue(api.resources);
    const sendAt = inAnHour();
    const response = await post('/v1/messages', { ...validRequest, sendAt: sendAt.replace('Z', '+00:00') });

    expect(response.statusCode).toBe(202);
    const { id, status } = parseBody(response);
    expect(status).toBe('scheduled');
    expect((await api.ledger.get(id as string))!.value).toMatchObject({ state: 'scheduled', sendAt });
    // SQS holds it for the longest delay (15 minutes): the worker sees it no sooner.
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it.each([
    ['in the past', () => new Date(Date.now() - 60_000).toISOString(), 'in the past'],
    ['beyond 30 days', () => new Date(Date.now() + 31 * 86_400_000).toISOString(), 'more than 30 days'],
    ['without an offset', () => '2026-12-24T10:00:00', 'offset'],
  ])('refuses a sendAt %s with a 400 naming the field', async (_what, sendAt, message) => {
    const response = await post('/v1/messages', { ...validRequest, sendAt: sendAt() });
    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({
      error: 'validation_failed',
      issues: [{ path: 'sendAt', message: expect.stringContaining(message) }],
    });
  });

  it('takes sendAt per batch item: one scheduled, one refused', async () => {
    const response = await post('/v1/messages/batch', {
      messages: [
        { ...validRequest, sendAt: inAnHour() },
        { ...validRequest, sendAt: '2020-01-01T00:00:00Z' },
      ],
    });
    expect(response.statusCode).toBe(202);
    const { results } = parseBody(response) as { results: Record<string, unknown>[] };
    expect(results[0]).toMatchObject({ status: 'scheduled' });
    expect(results[1]).toMatchObject({ error: { code: 'validation_failed', issues: [{ path: 'sendAt' }] } });
    await drainQueue(api.resources);
  });
});

describe('POST /v1/messages/{id}/cancel', () => {
  it('cancels a scheduled message: 200 with the record, its recipients cancelled; again: 409', async () => {
    const id = await submit({ sendAt: inAnHour() });

    const response = await post(`/v1/messages/${id}/cancel`);

    expect(response.statusCode).toBe(200);
    const body = parseBody(response);
    expect(body).toMatchObject({ id, state: 'cancelled' });
    expect((body.recipients as { state: string }[]).map((r) => r.state)).toEqual([
      'cancelled',
      'cancelled',
      'cancelled',
    ]);
    expect((await api.ledger.get(id))!.value.state).toBe('cancelled');
    const again = await post(`/v1/messages/${id}/cancel`);
    expect(again.statusCode).toBe(409);
    expect(parseBody(again)).toMatchObject({ error: 'not_cancellable', state: 'cancelled' });
  });

  it('cancels a deferred message, keeping the recipient already delivered', async () => {
    const id = await submit();
    await workerWrites(id, (r) => ({
      ...r,
      state: 'deferred',
      attempts: 1,
      recipients: r.recipients.map((x, i) => ({ ...x, state: i === 0 ? 'delivered' : 'deferred' })),
    }));

    const response = await post(`/v1/messages/${id}/cancel`);

    expect(response.statusCode).toBe(200);
    expect((parseBody(response).recipients as { state: string }[]).map((r) => r.state)).toEqual([
      'delivered',
      'cancelled',
      'cancelled',
    ]);
  });

  it.each([
    [
      'being sent',
      (r: StatusRecord): StatusRecord => ({
        ...r,
        state: 'sending',
        lease: { owner: 'w', until: inAnHour() },
      }),
      'sending',
    ],
    ['sent', (r: StatusRecord): StatusRecord => ({ ...r, state: 'sent' }), 'sent'],
    ['failed', (r: StatusRecord): StatusRecord => ({ ...r, state: 'failed' }), 'failed'],
  ])(
    'answers 409 not_cancellable for a message %s, with its state, and changes nothing',
    async (_what, change, state) => {
      const id = await submit();
      await workerWrites(id, change);
      const before = await api.ledger.get(id);

      const response = await post(`/v1/messages/${id}/cancel`);

      expect(response.statusCode).toBe(409);
      expect(parseBody(response)).toMatchObject({ error: 'not_cancellable', state });
      expect(await api.ledger.get(id)).toEqual(before);
    },
  );

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    expect((await post('/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel')).statusCode).toBe(404);
    expect((await post('/v1/messages/nope/cancel')).statusCode).toBe(400);
  });
});
