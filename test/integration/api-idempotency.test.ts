// Idempotency-Key on POST /v1/messages against moto: one key, one message — for sequential retries and for
// concurrent submits racing on the DynamoDB conditional write of the claim; a reuse with another body is
// refused; a claim whose request never enqueued is taken over once abandoned.
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import {
  type ApiOnMoto,
  apiEvent,
  apiOnFreshResources,
  apiVariant,
  claimItem,
  drainQueue,
  type HandlerCore,
  parseBody,
  validRequest,
} from './api-harness.ts';

const api = apiOnFreshResources();

const submit = (body: unknown, key: string) =>
  api.handler(apiEvent({ method: 'POST', path: '/v1/messages', body, headers: { 'Idempotency-Key': key } }));

/**
 * The handler on the real adapters, except that status records are written only once two requests have
 * their claim result: the loser of a race then decides while the winner's record does not exist yet.
 */
function handlerHoldingStatusWritesUntilTwoClaims(on: ApiOnMoto): HandlerCore {
  return apiVariant(on, {
    adjust: (deps) => {
      let claimsDone = 0;
      let bothClaimed: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        bothClaimed = resolve;
      });
      const store = deps.idempotency;
      deps.idempotency = {
        markEnqueued: (...args) => store.markEnqueued(...args),
        claim: async (...args) => {
          const result = await store.claim(...args);
          if (++claimsDone === 2) bothClaimed();
          return result;
        },
        release: (...args) => store.release(...args),
      };
      const create = deps.status.create.bind(deps.status);
      deps.status.create = async (record) => {
        await gate;
        return create(record);
      };
    },
  });
}

describe('Idempotency-Key', () => {
  it('returns the same id for a sequential retry and enqueues once', async () => {
    // Act
    const first = await submit(validRequest, 'order-1001');
    const retry = await submit({ ...validRequest }, 'order-1001');

    // Assess
    expect(first.statusCode).toBe(202);
    expect(retry.statusCode).toBe(202);
    const id = parseBody(first).id;
    expect(parseBody(retry)).toEqual({ id, status: 'queued' });
    expect(retry.headers).toMatchObject({ 'idempotent-replayed': 'true' });
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id)).toEqual([id]);
    const record = (await api.ledger.get(id as string))!.value;
    expect(record.idempotencyKey).toBe('order-1001');
    expect(record.requestFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(queued[0]!.record).toEqual(record);
    expect(await claimItem(api.resources, 'order-1001')).toMatchObject({
      id,
      fingerprint: record.requestFingerprint,
    });
  });

  it('gives every one of several concurrent submits the same id and enqueues exactly one message', async () => {
    // Act
    const responses = await Promise.all(Array.from({ length: 6 }, () => submit(validRequest, 'race-42')));

    // Assess
    expect(responses.map((r) => r.statusCode)).toEqual(Array(6).fill(202));
    const ids = new Set(responses.map((r) => parseBody(r).id));
    expect(ids.size).toBe(1);
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id)).toEqual([...ids]);
    expect((await api.ledger.get([...ids][0] as string))?.value.idempotencyKey).toBe('race-42');
  });

  it('treats a reordered but equal body as the same request', async () => {
    const first = await submit(validRequest, 'order-1002');
    const reordered = Object.fromEntries(Object.entries(validRequest).reverse());
    const retry = await submit(reordered, 'order-1002');

    expect(parseBody(retry).id).toBe(parseBody(first).id);
    expect(await drainQueue(api.resources)).toHaveLength(1);
  });

  it('answers 422 when the key is reused with a different body, and enqueues nothing more', async () => {
    const first = await submit(validRequest, 'order-1003');
    const reuse = await submit({ ...validRequest, subject: 'Something else' }, 'order-1003');

    expect(first.statusCode).toBe(202);
    expect(reuse.statusCode).toBe(422);
    expect(parseBody(reuse)).toMatchObject({ error: 'idempotency_key_reused' });
    expect(await drainQueue(api.resources)).toHaveLength(1);
  });

  it('answers one of two racing submits with different bodies 202 and the other 422, round after round', async () => {
    for (let round = 0; round < 5; round++) {
      // Prepare
      const key = `race-bodies-${round}`;
      const bodies = [
        { ...validRequest, subject: `first body ${round}` },
        { ...validRequest, subject: `second body ${round}` },
      ];

      // Act
      const responses = await Promise.all(bodies.map((body) => submit(body, key)));

      // Assess: exactly one winner, whose request is the one on the queue; the loser is refused.
      expect(responses.map((r) => r.statusCode).sort()).toEqual([202, 422]);
      const winner = responses.findIndex((r) => r.statusCode === 202);
      expect(parseBody(responses[1 - winner]!)).toMatchObject({ error: 'idempotency_key_reused' });
      const queued = (await drainQueue(api.resources)) as { id: string; request: { subject: string } }[];
      expect(queued.map((m) => [m.id, m.request.subject])).toEqual([
        [parseBody(responses[winner]!).id, bodies[winner]!.subject],
      ]);
    }
  });

  it('refuses the loser of a race with a different body even before the winner has written its status record', async () => {
    // Prepare
    const gated = handlerHoldingStatusWritesUntilTwoClaims(api);
    const bodies = [
      { ...validRequest, subject: 'gated first' },
      { ...validRequest, subject: 'gated second' },
    ];

    // Act
    const responses = await Promise.all(
      bodies.map((body) =>
        gated(
          apiEvent({ method: 'POST', path: '/v1/messages', body, headers: { 'Idempotency-Key': 'gated' } }),
        ),
      ),
    );

    // Assess
    expect(responses.map((r) => r.statusCode).sort()).toEqual([202, 422]);
    const winner = responses.findIndex((r) => r.statusCode === 202);
    const queued = (await drainQueue(api.resources)) as { id: string; request: { subject: string } }[];
    expect(queued.map((m) => [m.id, m.request.subject])).toEqual([
      [parseBody(responses[winner]!).id, bodies[winner]!.subject],
    ]);
  });

  it('gives the loser of a race with the same body the winner’s id once the winner’s record is written', async () => {
    const gated = handlerHoldingStatusWritesUntilTwoClaims(api);
    const event = () =>
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        body: validRequest,
        headers: { 'Idempotency-Key': 'gated-same' },
      });

    const responses = await Promise.all([gated(event()), gated(event())]);

    expect(responses.map((r) => r.statusCode)).toEqual([202, 202]);
    const ids = responses.map((r) => parseBody(r).id);
    expect(ids[0]).toBe(ids[1]);
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual([ids[0]]);
  });

  it('compares with the status record’s fingerprint when the claim carries none', async () => {
    // Prepare: a submit, then its claim rewritten as one without a fingerprint ({ id, createdAt } only).
    const first = await submit(validRequest, 'legacy-claim');
    const claim = await claimItem(api.resources, 'legacy-claim');
    expect(claim?.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const { fingerprint: _fingerprint, ...bare } = claim!;
    await api.resources.clients.documents.send(
      new PutCommand({ TableName: api.resources.table, Item: bare }),
    );

    // Act
    const reuse = await submit({ ...validRequest, subject: 'Another' }, 'legacy-claim');
    const retry = await submit(validRequest, 'legacy-claim');

    // Assess
    expect(reuse.statusCode).toBe(422);
    expect(parseBody(retry)).toEqual({ id: parseBody(first).id, status: 'queued' });
    expect(await drainQueue(api.resources)).toHaveLength(1);
  });

  it('keeps different keys apart', async () => {
    const a = await submit(validRequest, 'key-a');
    const b = await submit(validRequest, 'key-b');

    expect(parseBody(a).id).not.toBe(parseBody(b).id);
    expect(await drainQueue(api.resources)).toHaveLength(2);
  });

  it.each([
    ['longer than 256 characters', 'k'.repeat(257)],
    ['with a control character', 'key\u0001x'],
    ['empty', ''],
  ])('answers 400 for a key %s', async (_name, key) => {
    const response = await submit(validRequest, key);

    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({ error: 'invalid_idempotency_key' });
  });

  it('accepts a key of exactly 256 characters', async () => {
    const response = await submit(validRequest, 'k'.repeat(256));

    expect(response.statusCode).toBe(202);
    expect(await drainQueue(api.resources)).toHaveLength(1);
  });

  it('takes over a key whose claimant died before writing the status record', async () => {
    // Prepare: a claim made 20 minutes ago whose message never got a status record.
    const lost = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    await api.idempotency.claim('abandoned-1', lost, new Date(Date.now() - 20 * 60 * 1000));

    // Act
    const response = await submit(validRequest, 'abandoned-1');
    const retry = await submit(validRequest, 'abandoned-1');

    // Assess
    expect(response.statusCode).toBe(202);
    const id = parseBody(response).id;
    expect(id).not.toBe(lost);
    expect(parseBody(retry).id).toBe(id);
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual([id]);
  });

  it('takes over an abandoned key whatever body its dead claimant had', async () => {
    // Prepare: a 20-minute-old claim for another body, never followed by a status record.
    const lost = '01ARZ3NDEKTSV4RRFFQ69G5FAX';
    await api.idempotency.claim('abandoned-2', lost, new Date(Date.now() - 20 * 60 * 1000), 'f'.repeat(64));

    // Act
    const response = await submit(validRequest, 'abandoned-2');

    // Assess
    expect(response.statusCode).toBe(202);
    expect(parseBody(response).id).not.toBe(lost);
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual([
      parseBody(response).id,
    ]);
  });

  it('answers 409, not the claimed id, while a recent claim still has no status record', async () => {
    // Prepare: a claim made a minute ago whose request never wrote its record (slow, or failed).
    const inFlight = '01ARZ3NDEKTSV4RRFFQ69G5FAW';
    await api.idempotency.claim('in-flight-1', inFlight, new Date(Date.now() - 60 * 1000));

    // Act
    const response = await submit(validRequest, 'in-flight-1');

    // Assess: that id may never exist, so it is not handed out; the client is told to retry.
    expect(response.statusCode).toBe(409);
    expect(parseBody(response)).toMatchObject({ error: 'idempotency_key_in_use' });
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('takes over an abandoned key only once when two retries race for it', async () => {
    // Prepare
    const lost = '01ARZ3NDEKTSV4RRFFQ69G5FAY';
    await api.idempotency.claim('abandoned-3', lost, new Date(Date.now() - 20 * 60 * 1000));

    // Act
    const responses = await Promise.all([
      submit(validRequest, 'abandoned-3'),
      submit(validRequest, 'abandoned-3'),
    ]);

    // Assess: the loser of the takeover replays the winner's id once the winner's record is there.
    expect(responses.map((r) => r.statusCode)).toEqual([202, 202]);
    const ids = new Set(responses.map((r) => parseBody(r).id));
    expect(ids.size).toBe(1);
    expect(ids.has(lost)).toBe(false);
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual([...ids]);
  });

  it('keeps the key of a request whose status write failed after the enqueue, and never enqueues it twice', async () => {
    // Prepare: DynamoDB refuses the status record (an internal error) after SQS took the message.
    let releases = 0;
    const failing = apiVariant(api, {
      adjust: (deps) => {
        deps.status.create = async () => {
          throw Object.assign(new Error('Internal server error'), { name: 'InternalServerError' });
        };
        const store = deps.idempotency;
        deps.idempotency = {
          claim: (...args) => store.claim(...args),
          markEnqueued: (...args) => store.markEnqueued(...args),
          release: (...args) => {
            releases++;
            return store.release(...args);
          },
        };
      },
    });
    const event = () =>
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        body: validRequest,
        headers: { 'Idempotency-Key': 'outage-1' },
      });

    // Act: the first attempt is answered; the client retries all the same (its answer got lost).
    const first = await failing(event());
    const retry = await api.handler(event());

    // Assess: 202 (the message is on the queue), the key still names it, the retry enqueues nothing.
    expect(first.statusCode).toBe(202);
    const id = parseBody(first).id;
    expect(releases).toBe(0);
    expect((await claimItem(api.resources, 'outage-1'))?.id).toBe(id);
    expect(retry.statusCode).toBe(409);
    expect(parseBody(retry)).toMatchObject({ error: 'idempotency_key_in_use' });
    expect(((await drainQueue(api.resources)) as QueueMessage[]).map((m) => m.id)).toEqual([id]);
  });
});
