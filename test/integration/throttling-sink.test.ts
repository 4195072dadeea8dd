// The throttling sink (test/support/throttling-sink.ts) answers 421 above its rate and closes, as a relay
// does; and, with DynamoRelayGate in front of it, a sender far above the sink's rate delivers everything.
// Time is the sink's injected clock, stepped by the test: nothing here sleeps.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { ensureLedgerTable } from '../../lib/aws/ledger-table.ts';
import { DynamoRelayGate } from '../../lib/aws/relay-gate.ts';
import { relayLimitSettings } from '../../lib/delivery/relay-limit.ts';
import { isThrottlingFailure } from '../../lib/delivery/throttle.ts';
import { SmtpConnection, type SmtpError } from '../../lib/smtp/index.ts';
import { fakeCredentials, TEST_REGION } from '../support/moto.ts';
import { SINK_REFUSAL, startThrottlingSink, type ThrottlingSink } from '../support/throttling-sink.ts';

const t0 = Date.UTC(2030, 0, 1);
const clock = { now: t0 };
const sinks: ThrottlingSink[] = [];
const connections: SmtpConnection[] = [];

afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(sinks.splice(0).map((sink) => sink.close()));
  clock.now = t0;
});

async function sink(maxPerSecond: number): Promise<ThrottlingSink> {
  const started = await startThrottlingSink({ maxPerSecond, clock: () => clock.now });
  sinks.push(started);
  return started;
}

async function connect(to: ThrottlingSink): Promise<SmtpConnection> {
  const connection = await SmtpConnection.connect({ host: to.host, port: to.port, tls: 'none' });
  connections.push(connection);
  return connection;
}

const message = (n: number) => `From: a@client.test\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`;
const envelope = (n: number) => ({ from: 'a@client.test', to: [`rcpt${n}@sink.test`] });

describe('throttling sink', () => {
  it('accepts up to its rate, then answers 421 4.7.0 to MAIL FROM and closes', async () => {
    // Prepare
    const s = await sink(3);
    const c = await connect(s);
    for (let n = 1; n <= 3; n++) await c.send(envelope(n), message(n));

    // Act
    const refused = await c.send(envelope(4), message(4)).then(
      () => undefined,
      (error: SmtpError) => error,
    );

    // Assess
    expect(refused?.code).toBe('SMTP_REPLY');
    expect(refused?.stage).toBe('mail');
    expect(refused?.reply).toEqual({ code: 421, enhanced: '4.7.0', lines: [SINK_REFUSAL] });
    expect(isThrottlingFailure(refused!)).toBe(true);
    expect(c.usable).toBe(false);
    expect(s.refusedCount).toBe(1);
    expect(s.accepted.map((m) => m.rcptTo)).toEqual([
      ['rcpt1@sink.test'],
      ['rcpt2@sink.test'],
      ['rcpt3@sink.test'],
    ]);
    expect(s.accepted[0]).toMatchObject({ at: t0, mailFrom: 'a@client.test' });
    expect(s.accepted[0]?.raw.toString()).toContain('body 1');
  });

  it('counts a trailing 1000 ms window: a message leaves it exactly 1000 ms after it was accepted', async () => {
    const s = await sink(3);
    for (const offset of [0, 400, 800]) {
      clock.now = t0 + offset;
      await (await connect(s)).send(envelope(offset), message(offset));
    }

    clock.now = t0 + 999;
    await expect((await connect(s)).send(envelope(999), message(999))).rejects.toMatchObject({
      reply: { code: 421 },
    });
    clock.now = t0 + 1000;
    await (await connect(s)).send(envelope(1000), message(1000));

    expect(s.accepted.map((m) => m.at - t0)).toEqual([0, 400, 800, 1000]);
    expect(s.refusedCount).toBe(1);
    expect(s.maxAcceptedInAnyWindow(1000)).toBe(3);
    expect(s.maxAcceptedInAnyWindow(1001)).toBe(4);
    expect(s.maxAcceptedInAnyWindow(1)).toBe(1);
  });

  it('counts transactions in progress on other connections, so concurrent senders cannot slip past', async () => {
    const s = await sink(4);
    const senders = await Promise.all(Array.from({ length: 6 }, () => connect(s)));

    const results = await Promise.allSettled(
      senders.flatMap((c, i) => [
        c.send(envelope(i * 10), message(i * 10)),
        c.send(envelope(i * 10 + 1), message(1)),
      ]),
    );

    expect(s.accepted).toHaveLength(4);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
    expect(s.maxAcceptedInAnyWindow(1000)).toBe(4);
    expect(s.refusedCount).toBeGreaterThanOrEqual(1);
  });
});

describe('throttling sink behind DynamoRelayGate', () => {
  let documents: ReturnType<typeof createAwsClients>['documents'];
  let table: string;

  beforeAll(async () => {
    for (const [name, value] of Object.entries(fakeCredentials)) process.env[name] ??= value;
    const clients = createAwsClients({ region: TEST_REGION, endpoint: inject('motoEndpoint') });
    documents = clients.documents;
    table = `smtpq-sink-test-${randomUUID().slice(0, 8)}`;
    await ensureLedgerTable(clients.dynamodb, table);
  });

  /**
   * One sender with `count` messages, as fast as the gate lets it: permits, then a message per permit on one
   * connection; a throttling reply pauses the relay and the unsent messages wait for the next permits.
   */
  async function deliverAll(s: ThrottlingSink, gate: DynamoRelayGate, count: number) {
    const pending = Array.from({ length: count }, (_, n) => n);
    let connection: SmtpConnection | undefined;
    let pauses = 0;
    for (let rounds = 0; pending.length > 0; rounds++) {
      if (rounds > 1_000) throw new Error('no progress');
      const now = new Date(clock.now);
      const { granted, retryAfterMs } = await gate.acquire(pending.length, now);
      if (granted === 0) {
        clock.now += retryAfterMs;
        continue;
      }
      let throttled = false;
      for (const n of pending.slice(0, granted)) {
        if (!connection?.usable) connection = await connect(s);
        try {
          await connection.send(envelope(n), message(n));
          pending.splice(pending.indexOf(n), 1);
        } catch (error) {
          if (!isThrottlingFailure(error as SmtpError)) throw error;
          await gate.pause(`421 ${(error as SmtpError).reply?.lines[0]}`, now);
          pauses += 1;
          throttled = true;
          break;
        }
      }
      if (!throttled) await gate.recovered(now);
    }
    return { pauses };
  }

  it('a limit below the sink rate: everything delivered, never a 421', async () => {
    const s = await sink(10);
    const gate = new DynamoRelayGate(
      documents,
      table,
      randomUUID(),
      relayLimitSettings({ ratePerSecond: 5, burst: 5 }),
    );

    const { pauses } = await deliverAll(s, gate, 40);

    expect(s.accepted).toHaveLength(40);
    expect(new Set(s.accepted.map((m) => m.rcptTo[0])).size).toBe(40);
    expect(pauses).toBe(0);
    expect(s.refusedCount).toBe(0);
    expect(s.maxAcceptedInAnyWindow(1000)).toBeLessThanOrEqual(5 + 5); // the limit plus one burst
    expect(clock.now - t0).toBe(7_000); // 5 at once, then 35 at 5/s
  });

  it('no limit at all: the shared pause alone gets everything through, one 421 per episode', async () => {
    const s = await sink(10);
    const gate = new DynamoRelayGate(documents, table, randomUUID(), relayLimitSettings({}));

    const { pauses } = await deliverAll(s, gate, 30);

    expect(s.accepted).toHaveLength(30);
    expect(s.refusedCount).toBe(pauses);
    expect(pauses).toBe(2); // 10 at t0, 421; 10 after 5 s, 421; the last 10 after 10 s more
    expect(s.maxAcceptedInAnyWindow(1000)).toBe(10);
    expect(clock.now - t0).toBe(15_000);
  });
});
