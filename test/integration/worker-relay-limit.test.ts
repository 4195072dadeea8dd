// The relay's limits across several workers at once, against a sink that answers 421 above a set rate:
// SMTP_MAX_MESSAGES_PER_SECOND holds across every worker (the sink never sees more than the limit plus one
// burst in any second, and never has to refuse), and without a limit the first 421 pauses the relay for all
// workers instead of each message being deferred into the same wall. Every message is delivered, once.
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker, type WorkerHandler } from '../../functions/worker/worker.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { DynamoRelayGate } from '../../lib/aws/relay-gate.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import { relayLimitSettings } from '../../lib/delivery/relay-limit.ts';
import { createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startThrottlingSink, type ThrottlingSink } from '../support/throttling-sink.ts';
import { apiEvent } from './api-harness.ts';

let resources: TestResources;

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'CRITICAL';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  // Receives that send nothing (a pause, the rate limit) count against the redrive like any other.
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: 30,
    maxReceiveCount: 100,
  });
});

const sinks: ThrottlingSink[] = [];
afterAll(async () => {
  for (const sink of sinks) await sink.close();
});

/** Submits `count` messages through the batch endpoint; returns their ids. */
async function submitMany(prefix: string, count: number): Promise<string[]> {
  const api = createApiHandler(createAwsDeps(loadApiConfig(resources.env), new Logger()));
  const ids: string[] = [];
  for (let start = 0; start < count; start += 100) {
    const messages = Array.from({ length: Math.min(100, count - start) }, (_, i) => ({
      from: 'bulk@example.com',
      to: [`${prefix}-${start + i}@example.org`],
      subject: 'hello',
      text: 'a bulk message',
    }));
    const response = await api(apiEvent({ method: 'POST', path: '/v1/messages/batch', body: { messages } }));
    expect(response.statusCode).toBe(202);
    for (const result of (JSON.parse(response.body!) as { results: { id?: string }[] }).results)
      ids.push(result.id!);
  }
  return ids;
}

function worker(sink: ThrottlingSink, env: Record<string, string>, pauseBaseMs: number): WorkerHandler {
  const config = loadWorkerConfig({
    ...resources.env,
    SMTP_HOST: sink.host,
    SMTP_PORT: String(sink.port),
    SMTP_TLS: 'none',
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '2',
    ...env,
  });
  // The production pause grows from 5 s to 5 min; a shorter range keeps the test short, the mechanism is
  // the same.
  const gate = new DynamoRelayGate(
    resources.clients.documents,
    resources.table,
    `${sink.host}:${sink.port}`,
    relayLimitSettings({ ratePerSecond: config.relayMaxRate, pauseBaseMs, pauseMaxMs: 4 * pauseBaseMs }),
  );
  return createWorker(createWorkerDeps(config, { clients: resources.clients, gate }));
}

/** `count` concurrent workers (as Lambda's event source runs them) until every id is final. */
async function runWorkers(handler: WorkerHandler, count: number, ids: string[]): Promise<void> {
  const ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
  const pollers: SqsPoller[] = Array.from({ length: count }, () =>
    createSqsPoller({
      sqs: resources.clients.sqs,
      queueUrl: resources.queueUrl,
      batchSize: 20,
      batchingWindowSeconds: 1,
      waitTimeSeconds: 1,
      handler,
    }),
  );
  for (const poller of pollers) poller.start();
  try {
    for (let round = 0; round < 120; round++) {
      const records = await ledger.getMany(ids);
      if ([...records.values()].every((r) => ['sent', 'failed', 'partially_sent'].includes(r.value.state)))
        return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error('the workers did not finish within 60 s');
  } finally {
    await Promise.all(pollers.map((p) => p.stop()));
  }
}

describe('the relay limit, shared by every worker', () => {
  it('SMTP_MAX_MESSAGES_PER_SECOND holds across three workers: no second sees more than the limit plus one burst', async () => {
    const rate = 10;
    // The sink refuses above three times the limit: with the limit held, it never has to.
    const sink = await startThrottlingSink({ maxPerSecond: 3 * rate });
    sinks.push(sink);
    const ids = await submitMany('limited', 80);

    await runWorkers(worker(sink, { SMTP_MAX_MESSAGES_PER_SECOND: String(rate) }, 1_000), 3, ids);

    const ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
    const records = [...(await ledger.getMany(ids)).values()];
    expect(records.map((r) => r.value.state)).toEqual(ids.map(() => 'sent'));
    expect(sink.refusedCount).toBe(0);
    // Permits: at most rate + burst (one second's worth) in any second — exact on the gate's clock
    // (test/integration/aws-relay-gate.test.ts). The sink sees each message a claim write later than its
    // permit, and moto's write latency on a loaded machine varies by up to about a second, which can
    // bunch arrivals by one more second's worth at most. Real DynamoDB writes take milliseconds.
    const burst = rate;
    expect(sink.maxAcceptedInAnyWindow(1000)).toBeLessThanOrEqual(rate + burst + rate);
    // And over the whole run the limit held on average: N messages take at least (N - burst) / rate seconds.
    const span = sink.accepted.at(-1)!.at - sink.accepted[0]!.at;
    expect(span).toBeGreaterThanOrEqual(((80 - burst) / rate) * 1000 - 500);
    const perRecipient = new Map<string, number>();
    for (const m of sink.accepted)
      for (const to of m.rcptTo) perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
    expect(perRecipient.size).toBe(80);
    expect([...perRecipient.values()].every((n) => n === 1)).toBe(true);
  }, 90_000);

  it('without a limit, a 421 pauses the relay for every worker; the pause ends by itself and everything is delivered once', async () => {
    const sink = await startThrottlingSink({ maxPerSecond: 15 });
    sinks.push(sink);
    const ids = await submitMany('paused', 60);

    await runWorkers(worker(sink, {}, 500), 3, ids);
    // (60 s at most: the pause is capped at 2 s here.)

    const ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
    const records = [...(await ledger.getMany(ids)).values()].map((r) => r.value);
    expect(records.map((r) => r.state)).toEqual(ids.map(() => 'sent'));
    expect(sink.refusedCount).toBeGreaterThan(0);
    // The pause is in the ledger, shared: its level rose and (the relay recovered) fell back.
    const gate = new DynamoRelayGate(
      resources.clients.documents,
      resources.table,
      `${sink.host}:${sink.port}`,
      relayLimitSettings({}),
    );
    const relay = await gate.status();
    expect(relay.pausedUntil === undefined || relay.pausedUntil.getTime() <= Date.now()).toBe(true);
    // Throttled messages were retried after the pause, not given up or refused for good.
    const retried = records.filter((r) => r.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    const accepted = new Map<string, number>();
    for (const m of sink.accepted) for (const to of m.rcptTo) accepted.set(to, (accepted.get(to) ?? 0) + 1);
    expect(accepted.size).toBe(60);
    expect([...accepted.values()].every((n) => n === 1)).toBe(true);
  }, 90_000);
});
