// DynamoRelayGate against moto: gates on one table share one limit (racing never over-grants), a pause set by
// one is seen by the others and ends by itself, and the request counts stay what lib/aws/relay-gate.ts says
// (unlimited: reads only; steady state: one write; a lost race: one more write, no read).
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { type AwsClients, createAwsClients } from '../../lib/aws/clients.ts';
import { ensureLedgerTable, relayKey } from '../../lib/aws/ledger-table.ts';
import { DynamoRelayGate, type DynamoRelayGateOptions } from '../../lib/aws/relay-gate.ts';
import { type RelayLimitSettings, relayLimitSettings } from '../../lib/delivery/relay-limit.ts';
import { fakeCredentials, TEST_REGION } from '../support/moto.ts';

const t0 = Date.UTC(2030, 0, 1);
const at = (ms: number) => new Date(t0 + ms);

let endpoint: string;
let clients: AwsClients;
let table: string;

beforeAll(async () => {
  for (const [name, value] of Object.entries(fakeCredentials)) process.env[name] ??= value;
  endpoint = inject('motoEndpoint');
  clients = createAwsClients({ region: TEST_REGION, endpoint });
  table = `smtpq-relay-test-${randomUUID().slice(0, 8)}`;
  await ensureLedgerTable(clients.dynamodb, table);
});

/** A document client that records the DynamoDB operation of every request it sends. */
function countingDocuments(): { documents: DynamoDBDocumentClient; calls: string[] } {
  const calls: string[] = [];
  const dynamodb = new DynamoDBClient({ region: TEST_REGION, endpoint });
  dynamodb.middlewareStack.add(
    (next, context) => async (args) => {
      calls.push(String(context.commandName).replace(/Command$/, ''));
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  return { documents: DynamoDBDocumentClient.from(dynamodb), calls };
}

/**
 * A document client that sends one request at a time. Real DynamoDB applies each conditional write to an item
 * atomically; moto 5.2 does not (it checks the condition, then applies the update, in a threaded server with
 * no lock between: 16 writers racing on one version had two winners once in 1,500 rounds here). Serialising
 * the requests gives moto DynamoDB's per-item atomicity back; the gates still race exactly as they would
 * against AWS — every interleaving of their reads and writes, stale copies, refused writes — because a
 * request is the unit DynamoDB serialises too.
 */
function atomicDocuments(): { documents: DynamoDBDocumentClient; refusals: () => number } {
  const dynamodb = new DynamoDBClient({ region: TEST_REGION, endpoint });
  let queue: Promise<unknown> = Promise.resolve();
  let refusals = 0;
  dynamodb.middlewareStack.add(
    (next) => (args) => {
      const turn = queue.then(() => next(args));
      queue = turn.catch(() => {});
      return turn;
    },
    { step: 'finalizeRequest', name: 'oneRequestAtATime' },
  );
  dynamodb.middlewareStack.add(
    (next) => (args) =>
      next(args).catch((error: unknown) => {
        if ((error as { name?: string }).name === 'ConditionalCheckFailedException') refusals += 1;
        throw error;
      }),
    { step: 'initialize', name: 'countRefusals' },
  );
  return { documents: DynamoDBDocumentClient.from(dynamodb), refusals: () => refusals };
}

function gates(
  count: number,
  settings: RelayLimitSettings,
  relay = randomUUID(),
  options: DynamoRelayGateOptions = {},
  documents: DynamoDBDocumentClient = clients.documents,
): DynamoRelayGate[] {
  return Array.from({ length: count }, () => new DynamoRelayGate(documents, table, relay, settings, options));
}

async function storedItem(relay: string) {
  const { Item } = await clients.documents.send(
    new GetCommand({ TableName: table, Key: { pk: relayKey(relay) }, ConsistentRead: true }),
  );
  return Item;
}

describe('DynamoRelayGate: the rate, shared', () => {
  it('several instances racing acquires never grant more than the bucket allows, and lose no grant', async () => {
    // Prepare: 6 workers, 20/s with a burst of 10 (interval 50 ms); every 250 ms of (injected) time each asks
    // twice at once for 4, far more than the 5 new permits.
    const relay = randomUUID();
    const settings = relayLimitSettings({ ratePerSecond: 20, burst: 10 });
    const atomic = atomicDocuments();
    const workers = gates(6, settings, relay, {}, atomic.documents);
    const steps = 8;
    let total = 0;

    // Act
    for (let step = 0; step < steps; step++) {
      const now = at(step * 250);
      const results = await Promise.all(
        workers.flatMap((gate) => [gate.acquire(4, now), gate.acquire(4, now)]),
      );
      let granted = results.reduce((sum, r) => sum + r.granted, 0);
      // Whatever the racers left (some give up after their bounded attempts), one worker takes now.
      for (;;) {
        const rest = await workers[step % workers.length]!.acquire(1_000, now);
        granted += rest.granted;
        if (rest.granted === 0 && rest.retryAfterMs >= 50) break;
      }
      // Assess, per step: never beyond the GCRA bound of the time elapsed so far.
      total += granted;
      expect(total).toBeLessThanOrEqual(settings.burst + (20 * step * 250) / 1000);
    }

    // Assess: exactly the bucket — burst + rate × span — went out, and the stored arrival time accounts for
    // every permit granted (the bucket never idled, so tat = t0 + total × interval).
    expect(total).toBe(10 + (20 * (steps - 1) * 250) / 1000);
    const item = await storedItem(relay);
    expect(item?.tatMs).toBeCloseTo(t0 + total * 50, 3);
    // And they did race: stale copies were refused and resolved from the refusal.
    expect(atomic.refusals()).toBeGreaterThan(0);
  });

  it('a worker alone pays one write per acquire; a lost race one more, and no read', async () => {
    const relay = randomUUID();
    const settings = relayLimitSettings({ ratePerSecond: 100, burst: 100 });
    const { documents, calls } = countingDocuments();
    const gate = new DynamoRelayGate(documents, table, relay, settings);
    const other = new DynamoRelayGate(clients.documents, table, relay, settings);

    expect((await gate.acquire(10, at(0))).granted).toBe(10);
    expect(calls).toEqual(['GetItem', 'UpdateItem']); // cold: read once

    calls.length = 0;
    expect((await gate.acquire(10, at(0))).granted).toBe(10);
    expect(calls).toEqual(['UpdateItem']);

    await other.acquire(10, at(0)); // the cached copy is now stale
    calls.length = 0;
    expect((await gate.acquire(10, at(0))).granted).toBe(10);
    expect(calls).toEqual(['UpdateItem', 'UpdateItem']); // refused with the current item (ALL_OLD), then won

    // Used up: the cached state says so, and nothing is sent at all.
    expect((await gate.acquire(1_000, at(0))).granted).toBe(60);
    calls.length = 0;
    expect(await gate.acquire(5, at(0))).toEqual({ granted: 0, retryAfterMs: 10 });
    expect(calls).toEqual([]);
  });

  it('under contention it gives up after its attempts with a short retry, never an error', async () => {
    const relay = randomUUID();
    const settings = relayLimitSettings({ ratePerSecond: 100 });
    const [stubborn] = gates(1, settings, relay, { maxAttempts: 1, random: () => 0.5 });
    const [other] = gates(1, settings, relay);
    await stubborn!.acquire(1, at(0));
    await other!.acquire(1, at(0));

    const result = await stubborn!.acquire(1, at(0)); // its one attempt loses to `other`'s write

    expect(result).toEqual({ granted: 0, retryAfterMs: 30 });
    expect((await stubborn!.acquire(1, at(0))).granted).toBe(1); // it learnt the state from the refusal
  });

  it('starts afresh when the item was deleted by hand', async () => {
    const relay = randomUUID();
    const [gate] = gates(1, relayLimitSettings({ ratePerSecond: 1 }), relay);
    expect((await gate!.acquire(1, at(0))).granted).toBe(1);
    await clients.documents.send(new DeleteCommand({ TableName: table, Key: { pk: relayKey(relay) } }));

    // The cached copy says "used up" until a permit is due; then the write finds no item and starts over.
    expect((await gate!.acquire(1, at(0))).granted).toBe(0);
    expect((await gate!.acquire(1, at(1_000))).granted).toBe(1);
    expect((await storedItem(relay))?.v).toBe(1);
  });
});

describe('DynamoRelayGate: the pause, shared', () => {
  it('a pause set by one instance is seen by the others, limited or not', async () => {
    const relay = randomUUID();
    const limitedSettings = relayLimitSettings({ ratePerSecond: 10 });
    const [a, b] = gates(2, limitedSettings, relay);
    const [unlimited] = gates(1, relayLimitSettings({}), relay);
    expect((await b!.acquire(1, at(0))).granted).toBe(1); // b holds a copy from before the pause

    const until = await a!.pause('421 4.7.0 Too many messages, slow down', at(100));

    expect(until).toEqual(at(5_100));
    expect(await b!.acquire(1, at(200))).toEqual({ granted: 0, retryAfterMs: 4_900, pausedUntil: at(5_100) });
    expect(await unlimited!.acquire(50, at(200))).toEqual({
      granted: 0,
      retryAfterMs: 4_900,
      pausedUntil: at(5_100),
    });
    expect(await unlimited!.status(at(200))).toEqual({
      pausedUntil: at(5_100),
      pauseLevel: 1,
      reason: '421 4.7.0 Too many messages, slow down',
    });
    // Another worker's 421 from the same episode neither extends nor escalates it.
    expect(await b!.pause('421 again', at(300))).toEqual(at(5_100));
    expect(await a!.status(at(300))).toMatchObject({
      pauseLevel: 1,
      reason: '421 4.7.0 Too many messages, slow down',
    });
  });

  it('a pause ends by itself; throttled again it doubles; recovered() resets the level once', async () => {
    const relay = randomUUID();
    const settings = relayLimitSettings({ ratePerSecond: 10 });
    const { documents, calls } = countingDocuments();
    const gate = new DynamoRelayGate(documents, table, relay, settings);
    const [other] = gates(1, settings, relay);

    await gate.pause('454 4.7.0 Throttling failure', at(0));
    expect((await other!.acquire(1, at(4_999))).granted).toBe(0);

    // Ends by time alone: nobody lifts it.
    expect((await other!.acquire(1, at(5_000))).granted).toBe(1);
    expect(await other!.status(at(5_000))).toEqual({ pauseLevel: 1 });

    // Throttled again before any recovery: the next pause is twice as long.
    expect(await other!.pause('421 slow down', at(5_010))).toEqual(at(15_010));
    expect(await gate.status(at(6_000))).toMatchObject({ pauseLevel: 2, pausedUntil: at(15_010) });

    // A batch that went through during the pause (permits from before it) does not reset the level.
    await gate.recovered(at(10_000));
    expect(await other!.status(at(10_000))).toMatchObject({ pauseLevel: 2 });

    await gate.recovered(at(15_010));
    expect(await other!.status(at(15_010))).toEqual({ pauseLevel: 0 });
    calls.length = 0;
    await gate.recovered(at(16_000)); // already 0: no request at all
    expect(calls).toEqual([]);
    expect(await other!.pause('421', at(20_000))).toEqual(at(25_000)); // back to the base
  });

  it('an unlimited relay never writes for acquire: one eventually consistent read each', async () => {
    const relay = randomUUID();
    const { documents, calls } = countingDocuments();
    const gate = new DynamoRelayGate(documents, table, relay, relayLimitSettings({}));

    for (let i = 0; i < 5; i++) expect((await gate.acquire(500, at(i))).granted).toBe(500);
    expect(calls).toEqual(Array(5).fill('GetItem'));
    expect(await storedItem(relay)).toBeUndefined();

    calls.length = 0;
    await gate.pause('421', at(10));
    expect(calls.filter((c) => c === 'UpdateItem')).toHaveLength(1);
    calls.length = 0;
    expect((await gate.acquire(500, at(20))).granted).toBe(0);
    expect((await gate.acquire(500, at(5_010))).granted).toBe(500);
    expect(calls).toEqual(['GetItem', 'GetItem']);
  });
});
