// The fault suite of the whole local pipeline (API → queue → worker → relay): a relay that misbehaves on its
// first connection, one mode at a time. For each: every message reaches a final state, nothing ends failed,
// every recipient is accepted by the relay exactly once — except after a connection lost after the final
// dot, where the relay had the message and the client never heard so: one resend each at most, counted and
// reported, never hidden.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { type FaultMode, type FaultyRelay, startFaultyRelay } from '../support/faulty-relay.ts';
import { waitFor } from './dev-harness.ts';

let relay: FaultyRelay;
let dev: DevStack;
let dataDir: string;

beforeAll(async () => {
  relay = await startFaultyRelay();
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-faults-'));
  Object.assign(process.env, {
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '2',
    RETRY_MAX_ATTEMPTS: '20',
    // A stall after the final dot is noticed in seconds, not in the minute of production.
    SMTP_DATA_TIMEOUT_MS: '2000',
    SMTP_COMMAND_TIMEOUT_MS: '2000',
  });
  const { startDev } = await import('../../scripts/local/dev.ts');
  dev = await startDev({
    port: 0,
    dataDir,
    awsEndpoint: inject('motoEndpoint'),
    resourcePrefix: `smtpq-e2e-${randomUUID().slice(0, 8)}`,
    smtpUrl: `smtp://127.0.0.1:${relay.port}?tls=none`,
    log: () => {},
  });
});

afterAll(async () => {
  await dev?.stop();
  await relay?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function status(id: string): Promise<StatusRecord> {
  return (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}

const FINAL = new Set(['sent', 'partially_sent', 'failed', 'cancelled']);

/** Three messages of two recipients each, through the batch endpoint; returns their final records. */
async function sendThree(mode: FaultMode): Promise<StatusRecord[]> {
  const response = await fetch(`${dev.apiUrl}/v1/messages/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [1, 2, 3].map((n) => ({
        from: 'sender@example.com',
        to: [`${mode}-${n}a@example.org`, `${mode}-${n}b@example.org`],
        subject: `${mode} ${n}`,
        text: `message ${n} of mode ${mode}`,
      })),
    }),
  });
  expect(response.status).toBe(202);
  const { results } = (await response.json()) as { results: { id: string }[] };
  return Promise.all(
    results.map(({ id }) =>
      waitFor(
        `message ${id} final`,
        async () => {
          const record = await status(id);
          return FINAL.has(record.state) ? record : undefined;
        },
        120_000,
      ),
    ),
  );
}

/** How many times the relay accepted each (message, recipient) of these records. */
function acceptedCounts(records: StatusRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records)
    for (const r of record.recipients) counts.set(`${record.messageId} ${r.address}`, 0);
  for (const a of relay.accepted)
    for (const to of a.recipients) {
      const key = `${a.messageId} ${to}`;
      if (counts.has(key)) counts.set(key, counts.get(key)! + 1);
    }
  return counts;
}

const MODES: FaultMode[] = [
  'drop-after-mail',
  'drop-after-rcpt',
  'drop-after-data',
  '421-at-mail',
  '421-at-dot',
  '451-at-rcpt',
  '452-at-rcpt',
  'stall-at-dot',
  'malformed-replies',
  'single-bytes',
];

describe('the pipeline against a relay that misbehaves on its first connection', () => {
  it.each(MODES)(
    '%s: every message sent, every recipient accepted exactly once',
    async (mode) => {
      relay.setMode(mode, mode === 'single-bytes' ? 1000 : 1);

      const records = await sendThree(mode);

      expect(records.map((r) => r.state)).toEqual(['sent', 'sent', 'sent']);
      for (const record of records)
        expect(record.recipients.map((r) => r.state)).toEqual(['delivered', 'delivered']);
      const counts = acceptedCounts(records);
      expect([...counts.values()]).toEqual([1, 1, 1, 1, 1, 1]);
    },
    150_000,
  );

  it('drop-after-dot: every message sent; at most one resend per message the relay had, counted', async () => {
    relay.setMode('drop-after-dot', 1);

    const records = await sendThree('drop-after-dot');

    expect(records.map((r) => r.state)).toEqual(['sent', 'sent', 'sent']);
    const counts = acceptedCounts(records);
    const resends = [...counts.values()].reduce((n, c) => n + (c - 1), 0);
    // Reported, not hidden: the resends this mode caused.
    console.log(`drop-after-dot: ${resends / 2} message(s) resent once (${resends} recipient deliveries)`);
    for (const c of counts.values()) expect(c === 1 || c === 2).toBe(true);
    // The connection lost after its dot carried at most the messages pipelined on it.
    const mine = relay.accepted.filter((a) => records.some((r) => r.messageId === a.messageId));
    const faulty = Math.min(...mine.map((a) => a.connection));
    const dropped = mine.filter((a) => a.connection === faulty).length;
    expect(resends / 2).toBeLessThanOrEqual(dropped);
  }, 150_000);
});
