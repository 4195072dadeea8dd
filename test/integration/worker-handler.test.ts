// The worker handler against moto and an in-process SMTP server (STARTTLS + AUTH), driven by the SQS
// event-source poller: a whole batch pipelined on one connection with one transcript, one reconnect, a relay
// that is down, giving up at the attempt limit, credentials from Secrets Manager never in a transcript, the
// lease under races and crashes, and the cold-start config check.

import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { simpleParser } from 'mailparser';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker, type WorkerDeps, type WorkerHandler } from '../../functions/worker/worker.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import { MAX_DEFERRAL_SECONDS } from '../../lib/delivery/backoff.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import { type BatchReport, createSqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import {
  acceptMessage,
  greetAndEhlo,
  close as hangUp,
  readData,
  reply,
  stall,
  startRawSmtpServer,
} from '../support/raw-smtp-server.ts';
import { startTestSmtpServer, TEST_USER, type TestSmtpServer } from '../support/smtp-server.ts';
import { apiEvent } from './api-harness.ts';

let resources: TestResources;
let smtp: TestSmtpServer;
let submit: (request: object) => Promise<string>;

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'CRITICAL';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: 1,
    maxReceiveCount: 10,
    smtpCredentials: { username: TEST_USER.user, password: TEST_USER.pass },
  });
  smtp = await startTestSmtpServer({
    auth: ['PLAIN'],
    hooks: {
      // `drop-…` addresses end the session with a 421, as a relay going away mid-batch does.
      rcpt: ({ address }) =>
        address?.startsWith('drop-') ? { code: 421, message: '4.3.2 going away' } : undefined,
      mail: ({ address }) =>
        address?.startsWith('busy-') ? { code: 451, message: '4.3.0 try later' } : undefined,
    },
  });
  const api = createApiHandler(
    createAwsDeps(loadApiConfig({ ...resources.env, MESSAGE_ID_DOMAIN: 'smtpq.test' }), new Logger()),
  );
  submit = async (request) => {
    const response = await api(apiEvent({ method: 'POST', path: '/v1/messages', body: request }));
    expect(response.statusCode).toBe(202);
    return (JSON.parse(response.body!) as { id: string }).id;
  };
});

afterEach(async () => {
  // Records a test left deferred would otherwise reach the next test's worker.
  const drain = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 2,
    handler: async () => undefined,
  });
  while ((await drain.pollOnce()) > 0);
});

afterAll(async () => {
  await smtp?.close();
});

function worker(env: Record<string, string> = {}, overrides: Partial<WorkerDeps> = {}): WorkerHandler {
  const config = loadWorkerConfig({
    ...resources.env,
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_TLS: 'starttls',
    SMTP_CA_PEM: smtp.caPem,
    SMTP_EHLO_NAME: 'worker.smtpq.test',
    SMTP_SECRET_ARN: resources.secretArn,
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '1',
    ...env,
  });
  return createWorker(createWorkerDeps(config, { clients: resources.clients, ...overrides }));
}

/** Runs the queue through `handler` until `done` holds (or 30 rounds); returns every batch report. */
async function pump(handler: WorkerHandler, done: () => Promise<boolean>): Promise<BatchReport[]> {
  const reports: BatchReport[] = [];
  const poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    batchingWindowSeconds: 1,
    handler,
    onBatch: (r) => reports.push(r),
  });
  for (let round = 0; round < 30 && !(await done()); round++) await poller.pollOnce();
  return reports;
}

const status = () => new DynamoLedger(resources.clients.documents, resources.table, 30);
async function record(id: string): Promise<StatusRecord> {
  return (await status().get(id))!.value;
}
/** The message's part of its connection's transcript for `attempt` (the latest by default). */
async function transcript(r: StatusRecord, attempt = r.attempts): Promise<string> {
  const store = new S3TranscriptStore(resources.clients.s3, resources.bucket);
  const parts = await Promise.all(
    r.transcripts.filter((t) => t.attempt === attempt).map((t) => store.part(t)),
  );
  return parts.join('');
}
const idOf = (r: { body: string }) => (JSON.parse(r.body) as { id: string }).id;
const settled =
  (...ids: string[]) =>
  async () =>
    (await Promise.all(ids.map(record))).every((r) => !['queued', 'sending', 'deferred'].includes(r.state));

/** Keeps every log line the worker writes, as the formatter received it (each is still printed). */
function capturingLogger(lines: string[]): Logger {
  class Capture extends LogFormatter {
    formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
      const entry = { level: attributes.logLevel, message: attributes.message, ...additional };
      lines.push(JSON.stringify(entry));
      return new LogItem({ attributes: entry });
    }
  }
  return new Logger({ logLevel: 'DEBUG', logFormatter: new Capture() });
}

describe('worker handler', () => {
  it('delivers a batch pipelined on one authenticated STARTTLS connection, one transcript for the connection', async () => {
    const logs: string[] = [];
    const before = smtp.connections();
    const ids = [];
    for (const n of [1, 2, 3]) {
      ids.push(
        await submit({
          from: 'alice@example.com',
          to: [`batch${n}@example.org`],
          subject: `n${n}`,
          text: `body ${n}`,
        }),
      );
    }
    const reports = await pump(worker({}, { logger: capturingLogger(logs) }), settled(...ids));
    expect(reports.some((r) => r.event.Records.length > 1)).toBe(true);
    // One line per attempt with the outcome; never the password, a body or the subject.
    expect(logs.filter((l) => l.includes('"message":"delivery attempt"'))).toHaveLength(3);
    for (const secret of [TEST_USER.pass, 'body 1', 'body 2', 'body 3', '"n1"'])
      expect(logs.join('\n')).not.toContain(secret);
    expect(smtp.connections() - before).toBe(reports.filter((r) => r.event.Records.length > 0).length);

    const records = await Promise.all(ids.map(record));
    const keys = new Set(records.map((r) => r.transcripts[0]?.key));
    // Messages that shared a connection share its transcript object.
    expect(keys.size).toBe(reports.filter((r) => r.event.Records.length > 0).length);
    for (const [i, r] of records.entries()) {
      expect(r).toMatchObject({ state: 'sent', attempts: 1 });
      expect(r.transcripts).toHaveLength(1);
      expect(r.transcripts[0]!.key).toMatch(/^transcripts\/\d{4}-\d{2}-\d{2}\/[\w.-]+-1\.log$/);
      const text = await transcript(r);
      // Every part shows the connection's own lines and only its own transaction.
      expect(text).toMatch(/C: AUTH PLAIN <redacted>/);
      expect(text).toMatch(/certificate verified for 127\.0\.0\.1/);
      expect(text).toContain(`delivery attempt 1 of message ${r.id}`);
      expect(text).toContain(`C: RCPT TO:<batch${i + 1}@example.org>`);
      for (const other of [1, 2, 3].filter((n) => n !== i + 1))
        expect(text).not.toContain(`batch${other}@example.org`);
      expect(text).not.toContain(TEST_USER.pass);
      expect(text).toMatch(/S: 250 .*queued as/);
      const received = smtp.messages.find((m) => m.rcptTo.includes(`batch${i + 1}@example.org`))!;
      expect(received.secure).toBe(true);
      expect(received.user).toBe(TEST_USER.user);
      expect((await simpleParser(received.raw)).messageId).toBe(r.messageId);
    }
  });

  it('reconnects once after the relay drops the connection, then defers instead of connecting again', async () => {
    // Connection 1 takes one message and hangs up at the next MAIL; connection 2 the same. No PIPELINING, so
    // the transactions run one after another in the order of the batch.
    const relay = await startRawSmtpServer({
      script: () => [
        ...greetAndEhlo(['AUTH PLAIN']),
        ...reply(/^AUTH PLAIN /, '235 2.7.0 ok\r\n'),
        ...acceptMessage(),
        ...reply(/^MAIL FROM:/, ''),
        hangUp(),
      ],
    });
    try {
      const ids: string[] = [];
      for (const n of [1, 2, 3, 4])
        ids.push(await submit({ from: 'alice@example.com', to: [`drop${n}@example.org`], text: `m${n}` }));
      const batch = await receiveAll(ids);
      const response = await worker({
        SMTP_PORT: String(relay.port),
        SMTP_TLS: 'none',
        SMTP_REQUIRE_TLS: 'false',
      })({ Records: batch });
      expect(relay.connections).toHaveLength(2);
      const records = await Promise.all(ids.map(record));
      expect(records.map((r) => r.state)).toEqual(['sent', 'sent', 'deferred', 'deferred']);
      expect(await transcript(records[1]!)).toMatch(/the connection broke .*; reconnecting/);
      // The fourth waited its turn behind the third on the second connection: its part shows both.
      expect((await record(ids[3]!)).transcripts.map((t) => t.key)).toHaveLength(2);
      // A third connection is never opened: the budget is one reconnect per invocation.
      expect(records[3]!.recipients[0]!.error).toMatch(/SMTP_CONNECTION/);
      expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
        [batch[2]!, batch[3]!].map((r) => r.messageId).sort(),
      );
    } finally {
      await relay.stop();
    }
  });

  it('a relay that is down: deferred, and the transcript says how the connection failed', async () => {
    const closed = await startTestSmtpServer();
    const port = closed.port;
    await closed.close();
    const id = await submit({ from: 'alice@example.com', to: ['nobody-home@example.org'], text: 'x' });
    const reports = await pump(
      worker({ SMTP_PORT: String(port) }),
      async () => (await record(id)).attempts >= 1,
    );
    const mine = reports.flatMap((r) =>
      r.event.Records.filter((x) => idOf(x) === id).map((x) => x.messageId),
    );
    expect(reports.flatMap((r) => r.retained).filter((m) => mine.includes(m))).toHaveLength(1);
    const r = await record(id);
    expect(r.state).toBe('deferred');
    expect(r.nextAttemptAt).toBeDefined();
    expect(r.recipients[0]).toMatchObject({ state: 'deferred' });
    expect(r.recipients[0]!.error).toMatch(/connect/);
    expect(await transcript(r)).toMatch(/connection to 127\.0\.0\.1:\d+ failed: SMTP_CONNECTION/);
  });

  it('a relay that hangs up before the greeting: deferred, and that attempt has its transcript', async () => {
    const relay = await startRawSmtpServer({ script: [hangUp()] });
    try {
      const id = await submit({ from: 'alice@example.com', to: ['no-greeting@example.org'], text: 'x' });
      await pump(worker({ SMTP_PORT: String(relay.port) }), async () => (await record(id)).attempts >= 1);
      const r = await record(id);
      expect(relay.connections.length).toBeGreaterThanOrEqual(1);
      expect(r).toMatchObject({ state: 'deferred', transcripts: [{ attempt: 1 }] });
      const text = await transcript(r);
      expect(text).toMatch(/delivery attempt 1 of message/);
      expect(text).toMatch(/connection to 127\.0\.0\.1:\d+ failed: .*during greeting/);
      expect(text).not.toMatch(/^\S+ S: /m);
    } finally {
      await relay.stop();
    }
  });

  it('a relay that stalls after the message: the attempt times out before the invocation ends, deferred and recorded', async () => {
    // The relay takes the whole message, then never answers: with SMTP timeouts longer than the invocation,
    // only the invocation's deadline can end the wait in time to record the outcome.
    const relay = await startRawSmtpServer({
      script: [
        ...greetAndEhlo(['AUTH PLAIN']),
        ...reply(/^AUTH PLAIN /, '235 2.7.0 ok\r\n'),
        ...reply(/^MAIL FROM:/, '250 2.1.0 Ok\r\n'),
        ...reply(/^RCPT TO:/, '250 2.1.5 Ok\r\n'),
        ...reply('DATA', '354 go ahead\r\n'),
        readData(),
        stall(),
      ],
    });
    try {
      const id = await submit({ from: 'alice@example.com', to: ['stalled@example.org'], text: 'x' });
      const handler = worker({
        SMTP_PORT: String(relay.port),
        SMTP_TLS: 'none',
        SMTP_COMMAND_TIMEOUT_MS: '600000',
        SMTP_DATA_TIMEOUT_MS: '600000',
      });
      let started: number | undefined;
      // 12 s left when the invocation starts: 5 s of it kept back for recording, 5 s the least a batch
      // starts with.
      const context = {
        awsRequestId: 'stall',
        getRemainingTimeInMillis: () => 12_000 - (Date.now() - (started ?? Date.now())),
      };
      await pump(
        (event) => {
          started ??= Date.now();
          return handler(event, context);
        },
        async () => (await record(id)).attempts >= 1,
      );
      const r = await record(id);
      expect(r).toMatchObject({ state: 'deferred', recipients: [{ state: 'deferred' }] });
      expect(r.recipients[0]!.error).toMatch(/SMTP_TIMEOUT/);
      const text = await transcript(r);
      expect(text).toMatch(/C: <message: \d+ octets/);
      expect(text).toMatch(/SMTP_TIMEOUT at dot/);
    } finally {
      await relay.stop();
    }
  });

  it('credentials that cannot be read: deferred, the record and transcript say so by code, the log says why', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['no-secret@example.org'], text: 'x' });
    const missing = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:smtpq-missing-AbCdEf';
    const logs: string[] = [];
    await pump(
      worker({ SMTP_SECRET_ARN: missing }, { logger: capturingLogger(logs) }),
      async () => (await record(id)).attempts >= 1,
    );
    const r = await record(id);
    expect(r.state).toBe('deferred');
    const text = await transcript(r);
    expect(text).toMatch(
      /connection to 127\.0\.0\.1:\d+ failed: SMTP_CREDENTIALS: the relay's credentials could not be read/,
    );
    // What API callers read has no ARN, account id or SDK message; the log has the cause.
    for (const shown of [text, JSON.stringify(r)])
      for (const internal of ['arn:aws', '123456789012', 'ResourceNotFoundException', 'smtpq-missing'])
        expect(shown).not.toContain(internal);
    expect(logs.join('\n')).toMatch(/the SMTP credentials could not be read[\s\S]*ResourceNotFoundException/);
    expect(smtp.messages.filter((m) => m.rcptTo.includes('no-secret@example.org'))).toEqual([]);
  });

  it('one record whose claim cannot be written fails alone: the handler answers, the rest of the batch is delivered', async () => {
    const broken = await submit({ from: 'alice@example.com', to: ['unlucky@example.org'], text: 'x' });
    const fine = await submit({ from: 'alice@example.com', to: ['lucky@example.org'], text: 'y' });
    const store = status();
    const flaky = {
      create: store.create.bind(store),
      get: store.get.bind(store),
      getMany: store.getMany.bind(store),
      createMany: store.createMany.bind(store),
      update: async (next: StatusRecord, version: string) => {
        if (next.id === broken) throw new Error('DynamoDB InternalServerError');
        return store.update(next, version);
      },
    };
    const handler = worker({}, { status: flaky });
    const thrown: unknown[] = [];
    const answered: string[][] = [];
    await pump(
      async (event, context) => {
        try {
          const response = await handler(event, context);
          answered.push(
            response.batchItemFailures.map((f) =>
              idOf(event.Records.find((r) => r.messageId === f.itemIdentifier)!),
            ),
          );
          return response;
        } catch (error) {
          thrown.push(error);
          throw error;
        }
      },
      async () => (await record(fine)).state === 'sent' && answered.flat().includes(broken),
    );
    expect(thrown).toEqual([]);
    expect(answered.flat()).not.toContain(fine);
    expect(await record(broken)).toMatchObject({ state: 'queued', attempts: 0 });
    expect(smtp.messages.filter((m) => m.rcptTo.includes('lucky@example.org'))).toHaveLength(1);
    expect(smtp.messages.filter((m) => m.rcptTo.includes('unlucky@example.org'))).toEqual([]);
  });

  it('with too little time left, records go back to the queue untouched', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['late@example.org'], text: 'x' });
    const handler = worker();
    let handled = false;
    const reports = await pump(
      (event) => {
        handled ||= event.Records.some((r) => idOf(r) === id);
        return handler(event, { awsRequestId: 'late', getRemainingTimeInMillis: () => 5_000 });
      },
      async () => handled,
    );
    const mine = reports.flatMap((r) => r.event.Records).filter((r) => idOf(r) === id);
    expect(mine.length).toBeGreaterThan(0);
    expect(reports.every((r) => r.deleted.length === 0)).toBe(true);
    expect(await record(id)).toMatchObject({ state: 'queued', attempts: 0 });
  });

  it('a back-off at the 12 h maximum: the visibility SQS accepts equals the back-off in the ledger', async () => {
    const changes: { seconds: number; accepted: boolean }[] = [];
    const producer = new SqsQueueProducer(resources.clients.sqs, resources.queueUrl);
    const queue = {
      sendBatch: (messages: readonly QueueMessage[]) => producer.sendBatch(messages),
      async changeVisibilityBatch(entries: readonly { receiptHandle: string; seconds: number }[]) {
        const failed = await producer.changeVisibilityBatch(entries);
        // SQS refuses a visibility past 12 h after the receive (moto: after the send).
        for (const e of entries)
          changes.push({
            seconds: e.seconds,
            accepted: !failed.some((f) => f.receiptHandle === e.receiptHandle),
          });
        return failed;
      },
    };
    const id = await submit({ from: 'busy-long@example.com', to: ['tomorrow@example.org'], text: 'x' });
    const twelveHours = { RETRY_BASE_SECONDS: '43200', RETRY_MAX_SECONDS: '42000' };
    // Jitter at its top: the back-off is the full ceiling.
    await pump(worker(twelveHours, { queue, random: () => 1 }), async () => (await record(id)).attempts >= 1);
    const r = await record(id);
    expect(r.state).toBe('deferred');
    expect(changes).toEqual([{ seconds: MAX_DEFERRAL_SECONDS, accepted: true }]);
    expect((Date.parse(r.nextAttemptAt!) - Date.parse(r.updatedAt)) / 1000).toBe(MAX_DEFERRAL_SECONDS);
  });

  it('past the attempt limit: failed with the last reply, and the record is deleted', async () => {
    const id = await submit({ from: 'busy-sender@example.com', to: ['patient@example.org'], text: 'x' });
    const reports = await pump(worker({ RETRY_MAX_ATTEMPTS: '2' }), settled(id));
    const r = await record(id);
    expect(r).toMatchObject({ state: 'failed', attempts: 2 });
    expect(r.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 451 } });
    expect(r.error).toMatch(/gave up after 2 attempts/);
    expect(new Set(r.transcripts.map((t) => t.attempt))).toEqual(new Set([1, 2]));
    const last = reports.findLast((r) => r.event.Records.some((x) => idOf(x) === id))!;
    const mine = last.event.Records.find((x) => idOf(x) === id)!;
    expect(last.deleted).toContain(mine.messageId);
  });

  it('a queue message whose status record was never written (the API died in between): after the grace the worker writes it and delivers once', async () => {
    const id = '01M8ZZZZZZZZZZZZZZZZZZZZZZ';
    const at = new Date().toISOString();
    const initial: StatusRecord = {
      id,
      state: 'queued',
      createdAt: at,
      updatedAt: at,
      messageId: `<${id}@smtpq.test>`,
      from: 'alice@example.com',
      recipients: [{ address: 'orphan@example.org', kind: 'to', state: 'queued', updatedAt: at }],
      attempts: 0,
      transcripts: [],
    };
    const request = {
      from: 'alice@example.com',
      to: ['orphan@example.org'],
      text: 'x',
      messageId: initial.messageId,
      date: at,
    };
    await new SqsQueueProducer(resources.clients.sqs, resources.queueUrl).send({
      v: 1,
      id,
      record: initial,
      request,
    });
    expect(await status().get(id)).toBeUndefined();
    // Within the grace (2 s here, 60 s by default) the record is left to the API; after it, the worker writes it.
    await pump(
      worker({ RECORD_WRITE_GRACE_SECONDS: '2' }),
      async () => (await status().get(id))?.value.state === 'sent',
    );
    expect(await record(id)).toMatchObject({
      state: 'sent',
      attempts: 1,
      recipients: [{ state: 'delivered' }],
    });
    expect(smtp.messages.filter((m) => m.rcptTo.includes('orphan@example.org'))).toHaveLength(1);
  });

  it('two workers given the same record at once: one SMTP delivery, the other backs off', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['twice@example.org'], text: 'x' });
    const [received] = await receiveAll([id]);
    const [a, b] = await Promise.all([
      worker()({ Records: [received!] }),
      worker()({ Records: [received!] }),
    ]);
    expect(smtp.messages.filter((m) => m.rcptTo.includes('twice@example.org'))).toHaveLength(1);
    expect(await record(id)).toMatchObject({ state: 'sent', attempts: 1 });
    // The winner deletes the record; the loser keeps it (leased or lost the claim), to find it final later.
    expect([a.batchItemFailures.length, b.batchItemFailures.length].sort()).toEqual([0, 1]);
  });

  it('a worker killed after the relay accepted and before the outcome write: sent again at most once, by the next lease', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['crash@example.org'], text: 'x' });
    const [received] = await receiveAll([id]);
    const store = status();
    // The outcome write never happens (the process died): every update after the claim is lost.
    let writes = 0;
    const dying = {
      create: store.create.bind(store),
      get: store.get.bind(store),
      getMany: store.getMany.bind(store),
      createMany: store.createMany.bind(store),
      update: async (next: StatusRecord, version: string) => {
        if (++writes > 1) throw new Error('killed');
        return store.update(next, version);
      },
    };
    await worker({}, { status: dying })({ Records: [received!] });
    expect(await record(id)).toMatchObject({ state: 'sending', attempts: 1 });
    // Its lease runs out (15 min without a Lambda context): a later delivery takes the next one.
    const later = () => new Date(Date.now() + 16 * 60_000);
    const second = await worker({}, { now: later })({ Records: [received!] });
    expect(second.batchItemFailures).toEqual([]);
    expect(await record(id)).toMatchObject({ state: 'sent', attempts: 2 });
    // Once by the killed worker, once more by the next lease: never more.
    expect(smtp.messages.filter((m) => m.rcptTo.includes('crash@example.org'))).toHaveLength(2);
    await worker({}, { now: later })({ Records: [received!] });
    expect(smtp.messages.filter((m) => m.rcptTo.includes('crash@example.org'))).toHaveLength(2);
  });
});

/** Receives the queue messages of `ids` (newest receipt of each), in the order of `ids`. */
async function receiveAll(ids: string[]): Promise<Parameters<WorkerHandler>[0]['Records']> {
  const records: Parameters<WorkerHandler>[0]['Records'] = [];
  const poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    batchingWindowSeconds: 1,
    handler: async (event) => {
      records.push(...event.Records);
      return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
    },
  });
  const latest = new Map<string, (typeof records)[number]>();
  for (let i = 0; i < 10 && latest.size < ids.length; i++) {
    await poller.pollOnce();
    for (const r of records.splice(0)) if (ids.includes(idOf(r))) latest.set(idOf(r), r);
  }
  return ids.map((id) => latest.get(id)!);
}

describe('worker cold start', () => {
  it('fails the init with a message naming the missing variable', async () => {
    vi.resetModules();
    const saved = { ...process.env };
    try {
      Object.assign(process.env, resources.env);
      delete process.env.SMTP_HOST;
      await expect(import('../../functions/worker/index.ts')).rejects.toThrow(
        /invalid configuration: SMTP_HOST/,
      );
    } finally {
      process.env = saved;
    }
  });
});
