// The fault suite of the whole local pipeline (API → queue → worker → relay), against a real relay on loopback
// (test/support/misbehaving-relay.ts) whose first connections misbehave, one mode at a time: the connection
// lost at MAIL, RCPT, DATA and after the final dot; 421 at MAIL and at the final dot; 451 and 452 at RCPT; a
// stall after the final dot; malformed replies; replies a byte at a time. For each: every message reaches a
// final state, none ends failed, every recipient is delivered, and the relay took each (message, recipient)
// exactly once — except after a connection lost after the final dot (the relay had the message, the client
// never heard its 250): one resend per such message at most, counted and reported, never hidden.
//
// And the worker process killed (SIGKILL) in the middle of a batch, detected from the relay's side (it holds
// the connection after a final dot), then started afresh: nothing lost, and a resend only for the messages
// whose 250 the relay had sent but whose outcome the killed worker never wrote.
//
// Each test prints (and annotates) what happened: attempts, connections, the faults fired, the resends.
// SMTPQ_FAULTS_VERBOSE=1 prints the relay's side of every connection too (also printed when a test fails).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { loadApiConfig } from '../../lib/config.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { createGateway, listen } from '../../scripts/local/http-gateway.ts';
import {
  type FaultMode,
  type MisbehavingRelay,
  type RelayConnection,
  startMisbehavingRelay,
} from '../support/misbehaving-relay.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { submit, waitFor } from './dev-harness.ts';

const FINAL = new Set(['sent', 'partially_sent', 'failed', 'cancelled']);

async function status(apiUrl: string, id: string): Promise<StatusRecord> {
  const response = await fetch(`${apiUrl}/v1/messages/${id}`);
  if (response.status !== 200) throw new Error(`GET /v1/messages/${id} answered ${response.status}`);
  return (await response.json()) as StatusRecord;
}

/** `singles` POST /v1/messages and one POST /v1/messages/batch of `batched`, `rcpts` recipients each, at once. */
async function submitMessages(
  apiUrl: string,
  label: string,
  counts: { singles: number; batched: number; rcpts: number },
): Promise<string[]> {
  const request = (n: number) => ({
    from: 'sender@example.com',
    to: Array.from({ length: counts.rcpts }, (_, r) => `${label}-m${n}-r${r}@example.org`),
    subject: `${label} ${n}`,
    text: `message ${n} of ${label}\n`,
  });
  const batch = async (): Promise<string[]> => {
    const response = await fetch(`${apiUrl}/v1/messages/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: Array.from({ length: counts.batched }, (_, i) => request(counts.singles + i)),
      }),
    });
    const body = (await response.json()) as { results: { id?: string }[]; queued: number };
    if (response.status !== 202 || body.queued !== counts.batched)
      throw new Error(`batch submit answered ${response.status}: ${JSON.stringify(body)}`);
    return body.results.map((r) => r.id!);
  };
  const [batchIds, ...singleIds] = await Promise.all([
    batch(),
    ...Array.from({ length: counts.singles }, (_, n) => submit(apiUrl, request(n))),
  ]);
  return [...(singleIds as string[]), ...batchIds!];
}

/** Every record once all of them are final (GET /v1/messages/{id}); on timeout, the states seen last. */
async function allFinal(apiUrl: string, ids: string[], timeoutMs: number): Promise<StatusRecord[]> {
  let last: StatusRecord[] = [];
  try {
    return await waitFor(
      'every message final',
      async () => {
        last = await Promise.all(ids.map((id) => status(apiUrl, id)));
        return last.every((r) => FINAL.has(r.state)) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    const states = last.map((r) => `${r.id} ${r.state} attempts ${r.attempts}`).join('; ');
    throw new Error(`${(error as Error).message} (last seen: ${states})`);
  }
}

/** How many times the relay took each (message, recipient) of these records (keyed `<message-id> address`). */
function acceptedCounts(relay: MisbehavingRelay, records: StatusRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records)
    for (const r of record.recipients) counts.set(`${record.messageId} ${r.address}`, 0);
  for (const a of relay.acceptances) {
    const key = `${a.messageId} ${a.recipient}`;
    if (counts.has(key)) counts.set(key, counts.get(key)! + 1);
  }
  return counts;
}

/** Per message: the number of resends (times the relay took it beyond the first, the most of any recipient). */
function resendsPerMessage(counts: Map<string, number>, records: StatusRecord[]): Map<string, number> {
  const resends = new Map<string, number>();
  for (const record of records) {
    const most = Math.max(...record.recipients.map((r) => counts.get(`${record.messageId} ${r.address}`)!));
    resends.set(record.id, Math.max(0, most - 1));
  }
  return resends;
}

/** What each misbehaving connection did, once per kind (`connection lost at MAIL (RST)`, …). */
function faultsFired(connections: RelayConnection[]): string[] {
  const fired = connections.map((c) => {
    const fault = c.log.find((l) => l.startsWith('* fault: '))?.slice(9) ?? 'nothing';
    const hangUp = c.log.find((l) => l.startsWith('* hanging up'))?.match(/\((RST|FIN)\)/)?.[1];
    return hangUp && !fault.includes('(') ? `${fault} (${hangUp})` : fault;
  });
  return [...new Set(fired)];
}

function expectAllDelivered(records: StatusRecord[]): void {
  const summary = (r: StatusRecord) => ({
    state: r.state,
    recipients: r.recipients.map((x) => x.state),
  });
  expect(records.map(summary)).toEqual(
    records.map((r) => ({ state: 'sent', recipients: r.recipients.map(() => 'delivered') })),
  );
}

/** The dev stack's settings for this suite, set in process.env before startDev reads them. */
const FAST_ENV: Record<string, string> = {
  RETRY_BASE_SECONDS: '1',
  RETRY_MAX_SECONDS: '2',
  // Far more than the faults can cost: a message that ends failed here is a bug, not a give-up.
  RETRY_MAX_ATTEMPTS: '20',
  // A stall after the final dot is noticed in seconds, not after the production minute. Not smaller: a reply
  // missed by a busy machine after the relay took the message would be a resend of its own.
  SMTP_DATA_TIMEOUT_MS: '3000',
  SMTP_COMMAND_TIMEOUT_MS: '5000',
};

describe('the pipeline against a relay that misbehaves on its first connections', () => {
  let relay: MisbehavingRelay;
  let dev: DevStack;
  let dataDir: string;
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    relay = await startMisbehavingRelay();
    dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-faults-'));
    // Read by startDev (dev.ts) and the worker's configuration when the stack starts.
    Object.assign(process.env, FAST_ENV);
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
    for (const name of Object.keys(FAST_ENV))
      if (savedEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedEnv[name];
  });

  /** Five messages of three recipients: two single submits and a batch of three, all at once. */
  const COUNTS = { singles: 2, batched: 3, rcpts: 3 };

  const CASES: Array<{ mode: FaultMode; connections: number }> = [
    { mode: 'drop-after-mail', connections: 2 },
    { mode: 'drop-after-rcpt', connections: 2 },
    { mode: 'drop-after-data', connections: 2 },
    { mode: '421-at-mail', connections: 2 },
    { mode: '421-at-dot', connections: 2 },
    { mode: '451-at-rcpt', connections: 2 },
    { mode: '452-at-rcpt', connections: 2 },
    { mode: 'stall-at-dot', connections: 2 },
    // One connection for each malformation: MAIL, RCPT, the final dot, EHLO, the greeting.
    { mode: 'malformed-replies', connections: 5 },
    // Every connection of the test.
    { mode: 'single-bytes', connections: 1000 },
  ];

  it.for(CASES)(
    '$mode on the first $connections connection(s): every message sent, each recipient taken exactly once',
    { timeout: 240_000 },
    async ({ mode, connections }, { annotate }) => {
      const epoch = relay.setMode(mode, { connections });
      const ours = (c: { epoch: number }) => c.epoch === epoch;
      onTestFailed(() => console.log(`relay connections of ${mode}:\n${relay.dump(ours)}`));

      const ids = await submitMessages(dev.apiUrl, mode, COUNTS);
      const records = await allFinal(dev.apiUrl, ids, 200_000);

      expectAllDelivered(records);
      const counts = acceptedCounts(relay, records);
      expect(Object.fromEntries(counts)).toEqual(Object.fromEntries([...counts.keys()].map((k) => [k, 1])));
      // The fault really happened, on every connection it was given to.
      const faulty = relay.connections.filter((c) => ours(c) && c.mode === mode);
      expect(faulty.length).toBeGreaterThanOrEqual(1);
      // A 452 drops nothing: the refused recipients go into a further transaction on the same connection, so
      // when the five messages reach the worker in one batch, one connection carries them all.
      if (mode === '452-at-rcpt') expect(faulty.length).toBeLessThanOrEqual(connections);
      else if (mode !== 'single-bytes') expect(faulty.length).toBe(connections);
      expect(faulty.filter((c) => !c.fired).map((c) => c.number)).toEqual([]);
      // The client pipelined (RFC 2920): commands came in behind others, in one read.
      expect(relay.connections.some((c) => ours(c) && c.log.some((l) => l.startsWith('C+ ')))).toBe(true);

      const line =
        `${mode}: ${records.length} messages sent, attempts ${records.map((r) => r.attempts).join('/')}; ` +
        `${relay.connections.filter(ours).length} relay connections (${faulty.length} misbehaving); resends 0` +
        (mode === 'single-bytes' ? '' : `; faults: ${faultsFired(faulty).join(', ')}`);
      console.log(line);
      if (process.env.SMTPQ_FAULTS_VERBOSE) console.log(relay.dump(ours));
      await annotate(line);
    },
  );

  it('drop-after-dot on the first 2 connections: every message sent; at most one resend per message the relay had, counted', {
    timeout: 240_000,
  }, async ({ annotate }) => {
    const epoch = relay.setMode('drop-after-dot', { connections: 2 });
    onTestFailed(() => console.log(`relay connections:\n${relay.dump((c) => c.epoch === epoch)}`));

    const ids = await submitMessages(dev.apiUrl, 'drop-after-dot', COUNTS);
    const records = await allFinal(dev.apiUrl, ids, 200_000);

    expectAllDelivered(records);
    const counts = acceptedCounts(relay, records);
    // Nothing lost, nothing taken more than twice.
    for (const [key, count] of counts) expect({ key, count }).toEqual({ key, count: count >= 2 ? 2 : 1 });
    // Affected: the messages the relay took on a connection it then dropped without its 250.
    const byMessageId = new Map(records.map((r) => [r.messageId, r.id]));
    const affected = new Set(
      relay.acceptances
        .filter((a) => a.faulty && byMessageId.has(a.messageId))
        .map((a) => byMessageId.get(a.messageId)!),
    );
    expect(affected.size).toBeGreaterThanOrEqual(1);
    const resends = resendsPerMessage(counts, records);
    const resent = [...resends].filter(([, n]) => n > 0).map(([id]) => id);
    // A resend only for a message the relay had when the connection dropped, at most one each.
    expect(resent.filter((id) => !affected.has(id))).toEqual([]);
    expect([...resends.values()].every((n) => n <= 1)).toBe(true);
    expect(resent.length).toBeLessThanOrEqual(affected.size);
    // For the report: recipient deliveries beyond the first.
    const deliveries = [...counts.values()].reduce((n, c) => n + c - 1, 0);

    const line =
      `drop-after-dot: ${records.length} messages sent; ${affected.size} taken by the relay on a connection ` +
      `dropped before its 250; ${resent.length} of them resent once (${deliveries} recipient deliveries again)`;
    console.log(line);
    if (process.env.SMTPQ_FAULTS_VERBOSE) console.log(relay.dump((c) => c.epoch === epoch));
    await annotate(line);
  });
});

describe('the worker process killed (SIGKILL) in the middle of a batch, then started again', () => {
  const child = fileURLToPath(new URL('../support/worker-child.ts', import.meta.url));
  let resources: TestResources;
  let relay: MisbehavingRelay;
  let gateway: Server;
  let apiUrl: string;
  const running = new Set<ChildProcess>();

  beforeAll(async () => {
    // Resources of its own: the dev stack's poller must not take this queue's records. A short visibility
    // timeout, so what the killed worker held comes back soon; receives to spare before the DLQ.
    resources = await createTestResources(inject('motoEndpoint'), {
      visibilityTimeoutSeconds: 5,
      maxReceiveCount: 100,
    });
    relay = await startMisbehavingRelay();
    const quiet = new Logger({ logLevel: 'CRITICAL' });
    const api = createApiHandler(createAwsDeps(loadApiConfig(resources.env), quiet));
    gateway = createGateway({ region: resources.env.AWS_REGION, handler: (event) => api(event) });
    apiUrl = `http://127.0.0.1:${await listen(gateway, 0, '127.0.0.1', 'API')}`;
  });

  afterAll(async () => {
    for (const proc of running) proc.kill('SIGKILL');
    if (gateway)
      await new Promise<void>((resolve) => {
        gateway.close(() => resolve());
        gateway.closeAllConnections();
      });
    await relay?.close();
  });

  interface Worker {
    proc: ChildProcess;
    ready: Promise<void>;
    exited: Promise<NodeJS.Signals | number | null>;
    batches: string[];
    stderr: string[];
  }

  /** A worker process on the test queue, delivering to the relay. */
  function startWorker(): Worker {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...resources.env,
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(relay.port),
      SMTP_TLS: 'none',
      SMTP_REQUIRE_TLS: 'false',
      RETRY_BASE_SECONDS: '1',
      RETRY_MAX_SECONDS: '2',
      // A Lambda run of 20 s: the killed invocation's leases run out 20 s + 60 s after its claims.
      WORKER_FUNCTION_TIMEOUT_MS: '20000',
      WORKER_CONCURRENCY: '1',
      POWERTOOLS_LOG_LEVEL: 'ERROR',
      POWERTOOLS_METRICS_DISABLED: 'true',
    };
    // The dev stack of the other suite wrote its own settings into this process's environment.
    for (const name of ['SMTP_SECRET_ARN', 'SMTP_CA_PEM', 'SMTP_DATA_TIMEOUT_MS', 'SMTP_COMMAND_TIMEOUT_MS'])
      delete env[name];
    const proc = spawn(process.execPath, ['--import', 'tsx', child], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(proc);
    const worker: Worker = {
      proc,
      batches: [],
      stderr: [],
      exited: new Promise((resolve) =>
        proc.once('exit', (code, signal) => {
          running.delete(proc);
          resolve(signal ?? code);
        }),
      ),
      ready: new Promise<void>((resolve, reject) => {
        proc.once('exit', (code, signal) =>
          reject(new Error(`the worker exited (${signal ?? code}) before it was ready`)),
        );
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          if (line === 'READY') resolve();
          else if (line.startsWith('BATCH ')) worker.batches.push(line.slice(6));
        });
      }),
    };
    worker.ready.catch(() => {});
    createInterface({ input: proc.stderr! }).on('line', (line) => worker.stderr.push(line));
    return worker;
  }

  it('nothing lost; a resend only for the messages whose 250 the relay sent and whose outcome was never recorded', {
    timeout: 300_000,
  }, async ({ annotate }) => {
    // The third final dot of a connection gets no reply: the worker sits mid-batch, two 250s read, its
    // outcomes (written after the SMTP work) not yet.
    relay.setMode('hold-at-dot', { connections: 1, holdAtDot: 3 });
    const workers: Worker[] = [];
    onTestFailed(() => {
      console.log(`relay connections:\n${relay.dump()}`);
      for (const [n, w] of workers.entries())
        console.log(`worker ${n + 1}: batches ${w.batches.join(' ')}\n${w.stderr.join('\n')}`);
    });

    // Queued first, so the worker's first receive finds them all: one batch.
    const ids = await submitMessages(apiUrl, 'killed', { singles: 2, batched: 6, rcpts: 2 });
    const first = startWorker();
    workers.push(first);
    // A guard only (the hold comes within seconds): the test must not wait on its own timeout.
    let guard: NodeJS.Timeout | undefined;
    const held = await Promise.race([
      relay.whenHeld(),
      first.exited.then((how) => {
        throw new Error(`the worker exited (${how}) before the relay held its connection`);
      }),
      new Promise<never>((_, reject) => {
        guard = setTimeout(() => reject(new Error('the relay never held a connection')), 120_000);
      }),
    ]).finally(() => clearTimeout(guard));
    first.proc.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    await held.connection.closed;

    // The ledger as the killed worker left it: nothing more can be written for it now.
    const left = await Promise.all(ids.map((id) => status(apiUrl, id)));
    const recorded = new Set(left.filter((r) => FINAL.has(r.state)).map((r) => r.id));
    expect(left.filter((r) => r.state === 'failed')).toEqual([]);
    const idOf = new Map(left.map((r) => [r.messageId, r.id]));
    const answered = new Set(
      relay.acceptances.filter((a) => idOf.has(a.messageId)).map((a) => idOf.get(a.messageId)!),
    );
    // The relay's 250 was sent, the outcome never written: the messages a resend is allowed for.
    const unrecorded = new Set([...answered].filter((id) => !recorded.has(id)));
    expect(held.answeredBefore).toHaveLength(2);
    for (const messageId of held.answeredBefore) expect(unrecorded.has(idOf.get(messageId)!)).toBe(true);
    // The two answered messages are still claimed by the dead invocation (state sending, under its lease).
    for (const messageId of held.answeredBefore)
      expect(left.find((r) => r.messageId === messageId)!.state).toBe('sending');

    const second = startWorker();
    workers.push(second);
    await second.ready;
    // The dead invocation's leases run out (about 80 s after its claims) before its messages go again.
    const records = await allFinal(apiUrl, ids, 240_000);
    second.proc.kill('SIGTERM');
    await second.exited;

    expectAllDelivered(records);
    const counts = acceptedCounts(relay, records);
    const byId = new Map(records.map((r) => [r.id, r]));
    for (const [key, count] of counts) {
      const id = idOf.get(key.split(' ')[0]!)!;
      // Nothing lost; a second time only for a message whose reply was never recorded.
      expect({ key, count }).toEqual({ key, count: unrecorded.has(id) && count === 2 ? 2 : 1 });
    }
    const resends = resendsPerMessage(counts, records);
    const resent = [...resends].filter(([, n]) => n > 0).map(([id]) => id);
    expect(resent.length).toBeLessThanOrEqual(unrecorded.size);
    // A resent message was delivered by a second attempt (the killed one's claim counted, its lease run out).
    for (const id of resent) expect(byId.get(id)!.attempts).toBeGreaterThanOrEqual(2);

    const line =
      `worker SIGKILLed mid-batch: ${ids.length} messages sent; ${recorded.size} recorded before the kill; ` +
      `${unrecorded.size} answered 250 by the relay but never recorded; ${resent.length} of them resent once`;
    console.log(line);
    if (process.env.SMTPQ_FAULTS_VERBOSE) console.log(relay.dump());
    await annotate(line);
  });
});
