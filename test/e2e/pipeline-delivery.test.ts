// The whole pipeline on the local stack: the API handler (API Gateway v2 events) → SQS (moto) → the
// event-source poller → the worker handler → an in-process SMTP server (STARTTLS + AUTH), with the status in
// the DynamoDB ledger and the transcripts in S3 (one object per SMTP connection, each message's part served by
// GET /v1/messages/{id}/transcript). Both handlers are the real Lambda entry points, configured from the
// environment.
import { createHash, randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import type { StatusView } from '../../functions/api/status.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { loadApiConfig } from '../../lib/config.ts';
import { type BatchReport, createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { apiEvent } from '../integration/api-harness.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import {
  type HookReply,
  startTestSmtpServer,
  TEST_USER,
  type TestSmtpServer,
} from '../support/smtp-server.ts';
import {
  type ApiEntry,
  eventSourceFor,
  statusThrough,
  submitThrough,
  type WorkerEntry,
} from './pipeline-harness.ts';

let api: ApiEntry;
let worker: WorkerEntry;
let resources: TestResources;
let smtp: TestSmtpServer;
let poller: SqsPoller;
const reports: BatchReport[] = [];
/** Every RCPT the server was asked, in order. */
const rcptLog: string[] = [];

/** The relay's behaviour, chosen by the recipient's local part. */
function rcptHook(address: string, countForAddress: number): HookReply | undefined {
  if (address.startsWith('defer-once-') && countForAddress === 1)
    return { code: 451, message: '4.7.1 greylisted' };
  if (address.startsWith('reject-')) return { code: 550, message: '5.1.1 no such user' };
  // The first time it sees them, the server takes no more recipients in this transaction.
  if (address.startsWith('overflow-') && countForAddress === 1)
    return { code: 452, message: '4.5.3 too many recipients' };
  return undefined;
}

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'), {
    visibilityTimeoutSeconds: 2,
    maxReceiveCount: 10,
    smtpCredentials: { username: TEST_USER.user, password: TEST_USER.pass },
  });
  smtp = await startTestSmtpServer({
    auth: ['PLAIN', 'LOGIN'],
    hooks: {
      rcpt: ({ address, countForAddress }) => {
        rcptLog.push(address!);
        return rcptHook(address!, countForAddress);
      },
    },
  });
  Object.assign(process.env, resources.env, {
    POWERTOOLS_LOG_LEVEL: 'CRITICAL',
    POWERTOOLS_METRICS_NAMESPACE: 'smtpq-e2e',
    MESSAGE_ID_DOMAIN: 'smtpq.test',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_TLS: 'starttls',
    SMTP_REQUIRE_TLS: 'true',
    SMTP_CA_PEM: smtp.caPem,
    SMTP_SECRET_ARN: resources.secretArn,
    SMTP_EHLO_NAME: 'worker.smtpq.test',
    // Back-off of one second, so a deferred message comes back within the test.
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '1',
  });
  api = (await import('../../functions/api/index.ts')).handler;
  worker = (await import('../../functions/worker/index.ts')).handler;
  poller = eventSourceFor(resources, worker, reports);
  poller.start();
});

afterAll(async () => {
  await poller?.stop();
  await smtp?.close();
});

const submit = (request: object) => submitThrough(api, request);
const getStatus = (id: string) => statusThrough(api, id);

async function getTranscript(id: string, attempt: number): Promise<string> {
  const response = await api(
    apiEvent({ path: `/v1/messages/${id}/transcript`, query: { attempt: String(attempt) } }),
  );
  expect(response.statusCode).toBe(200);
  return response.body!;
}

const FINAL = ['sent', 'partially_sent', 'failed'];

/** Waits (polling the API, at most ~25 s) until the message is final, and until the poller deleted its record. */
async function settled(id: string): Promise<StatusView> {
  for (let i = 0; i < 100; i++) {
    const status = await getStatus(id);
    if (FINAL.includes(status.state) && receivesOf(id).some((r) => r.deleted)) return status;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`message ${id} did not settle: ${JSON.stringify(await getStatus(id))}`);
}

/** Each time the poller handed this message to the worker: its queue body and whether it was deleted. */
function receivesOf(id: string): { body: Record<string, unknown>; receiveCount: number; deleted: boolean }[] {
  return reports.flatMap((report) =>
    report.event.Records.filter((r) => (JSON.parse(r.body) as { id?: string }).id === id).map((r) => ({
      body: JSON.parse(r.body) as Record<string, unknown>,
      receiveCount: Number(r.attributes.ApproximateReceiveCount),
      deleted: report.deleted.includes(r.messageId),
    })),
  );
}

const receivedBy = (address: string) => smtp.messages.filter((m) => m.rcptTo.includes(address));

describe('pipeline', () => {
  it('delivers a submitted message: mail arrives, status sent, transcript in S3', async () => {
    const attachment = randomBytes(2048);
    const id = await submit({
      from: 'Alice <alice@example.com>',
      to: ['bob@example.org'],
      cc: ['carol@example.org'],
      bcc: ['dave@example.org'],
      subject: 'Quarterly report',
      text: 'Hello Bob,\n.\nA line with only a dot above.',
      attachments: [
        {
          filename: 'data.bin',
          contentType: 'application/octet-stream',
          content: attachment.toString('base64'),
        },
      ],
    });
    const status = await settled(id);
    expect(status.state).toBe('sent');
    expect(status.recipients.map((r) => [r.address, r.state])).toEqual([
      ['bob@example.org', 'delivered'],
      ['carol@example.org', 'delivered'],
      ['dave@example.org', 'delivered'],
    ]);

    const [received, ...more] = receivedBy('bob@example.org');
    expect(more).toEqual([]);
    expect(received!.rcptTo).toEqual(['bob@example.org', 'carol@example.org', 'dave@example.org']);
    expect(received!.secure).toBe(true);
    const mail = await simpleParser(received!.raw);
    expect(mail.subject).toBe('Quarterly report');
    expect(mail.text).toBe('Hello Bob,\n.\nA line with only a dot above.');
    expect(mail.messageId).toBe(status.messageId);
    expect(mail.headers.has('bcc')).toBe(false);
    expect(createHash('sha256').update(mail.attachments[0]!.content).digest('hex')).toBe(
      createHash('sha256').update(attachment).digest('hex'),
    );

    const transcript = await getTranscript(id, 1);
    expect(transcript).toMatch(/C: STARTTLS/);
    expect(transcript).toMatch(/C: AUTH (PLAIN|LOGIN)/);
    expect(transcript).not.toContain(TEST_USER.pass);
    expect(transcript).toMatch(/S: 250 2\.0\.0 Ok: queued as/);

    // The ledger item (DynamoDB) points at the connection's transcript object, which is in S3; nothing of
    // the message's own is in the bucket (no status object, no per-message transcript).
    const stored = await new DynamoLedger(resources.clients.documents, resources.table, 30).get(id);
    expect(stored?.value).toMatchObject({ id, state: 'sent', attempts: 1, messageId: status.messageId });
    expect(stored!.value.lease).toBeUndefined();
    expect(stored!.value.transcripts).toEqual([
      {
        attempt: 1,
        key: expect.stringMatching(/^transcripts\/\d{4}-\d{2}-\d{2}\/[^/]+-\d+\.log$/),
        lines: expect.any(Array),
      },
    ]);
    const keys = (
      await resources.clients.s3.send(new ListObjectsV2Command({ Bucket: resources.bucket }))
    ).Contents!.map((o) => o.Key!);
    expect(keys).toContain(stored!.value.transcripts[0]!.key);
    expect(keys.filter((k) => k.includes(id))).toEqual([]);
  });

  it('4xx then 2xx: deferred, delivered on the next attempt, two transcripts', async () => {
    const id = await submit({
      from: 'alice@example.com',
      to: ['defer-once-a@example.org'],
      text: 'greylisted',
    });
    const status = await settled(id);
    expect(status).toMatchObject({ state: 'sent', attempts: 2 });
    expect(status.transcripts.map((t) => t.attempt)).toEqual([1, 2]);
    expect(await getTranscript(id, 1)).toMatch(/S: 451 4\.7\.1 greylisted/);
    expect(await getTranscript(id, 2)).toMatch(/queued as/);
    expect(receivedBy('defer-once-a@example.org')).toHaveLength(1);
    expect(receivesOf(id).map((r) => [r.receiveCount, r.deleted])).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  it('5xx: failed with the reply, not retried', async () => {
    const id = await submit({ from: 'alice@example.com', to: ['reject-a@example.org'], text: 'nobody' });
    const status = await settled(id);
    expect(status).toMatchObject({ state: 'failed', attempts: 1 });
    expect(status.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 550 } });
    expect(receivesOf(id).map((r) => r.deleted)).toEqual([true]);
    expect(rcptLog.filter((a) => a === 'reject-a@example.org')).toHaveLength(1);
  });

  it('mixed recipients: one delivered, one deferred, one failed; the retry addresses only the deferred one', async () => {
    const [ok, later, never] = ['ok-m@example.org', 'defer-once-m@example.org', 'reject-m@example.org'];
    const id = await submit({ from: 'alice@example.com', to: [ok, later, never], text: 'mixed' });
    const status = await settled(id);
    expect(status).toMatchObject({ state: 'partially_sent', attempts: 2 });
    expect(status.recipients.map((r) => r.state)).toEqual(['delivered', 'delivered', 'failed']);
    // What the server was asked: ok and never once (first attempt), the deferred one twice.
    expect(rcptLog.filter((a) => a === ok)).toHaveLength(1);
    expect(rcptLog.filter((a) => a === never)).toHaveLength(1);
    expect(rcptLog.filter((a) => a === later)).toHaveLength(2);
    expect(
      smtp.messages.filter((m) => m.rcptTo.some((a) => [ok, later, never].includes(a))).map((m) => m.rcptTo),
    ).toEqual([[ok], [later]]);
  });

  it('452 to RCPT: the rest go in a further transaction of the same attempt', async () => {
    const addresses = ['first-s@example.org', 'overflow-s2@example.org', 'overflow-s3@example.org'];
    const id = await submit({ from: 'alice@example.com', to: addresses, text: 'many' });
    const status = await settled(id);
    expect(status).toMatchObject({ state: 'sent', attempts: 1 });
    expect(
      smtp.messages.filter((m) => m.rcptTo.some((a) => addresses.includes(a))).map((m) => m.rcptTo),
    ).toEqual([['first-s@example.org'], ['overflow-s2@example.org', 'overflow-s3@example.org']]);
    const transcript = await getTranscript(id, 1);
    expect(transcript.match(/C: MAIL FROM:/g)).toHaveLength(2);
  });

  it('a claim-check payload (too big for SQS) is delivered from S3', async () => {
    const big = randomBytes(1100 * 1024);
    const id = await submit({
      from: 'alice@example.com',
      to: ['big@example.org'],
      subject: 'big',
      text: 'see attachment',
      attachments: [{ filename: 'big.bin', content: big.toString('base64') }],
    });
    const status = await settled(id);
    expect(status.state).toBe('sent');
    // The queue message carries the initial status record (queue first, ledger second) and only the key of
    // the request: the attachment itself is in S3.
    const { body } = receivesOf(id)[0]!;
    expect(body).toEqual({ v: 1, id, payloadKey: `payloads/${id}.json`, record: expect.any(Object) });
    expect(body.record).toMatchObject({
      id,
      state: 'queued',
      attempts: 0,
      recipients: [{ address: 'big@example.org', state: 'queued' }],
    });
    expect(JSON.stringify(body).length).toBeLessThan(4096);
    const mail = await simpleParser(receivedBy('big@example.org')[0]!.raw);
    expect(Buffer.compare(mail.attachments[0]!.content, big)).toBe(0);
  });

  it('the same SQS message delivered twice (even at once) sends nothing twice', async () => {
    await poller.stop();
    try {
      const id = await submit({ from: 'alice@example.com', to: ['twice@example.org'], text: 'once only' });
      // Take the record off the queue the way the event source would, without letting it be deleted.
      const captured: SQSEvent[] = [];
      const capture = createSqsPoller({
        sqs: resources.clients.sqs,
        queueUrl: resources.queueUrl,
        waitTimeSeconds: 1,
        handler: async (event) => {
          captured.push(event);
          return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
        },
      });
      for (let i = 0; i < 10 && captured.length === 0; i++) await capture.pollOnce();
      const record = captured[0]!.Records.find((r) => (JSON.parse(r.body) as { id: string }).id === id)!;
      const event: SQSEvent = { Records: [record] };

      const concurrent = await Promise.all([worker(event), worker(event)]);
      const sequential = await worker(event);
      expect(receivedBy('twice@example.org')).toHaveLength(1);
      // One invocation delivered; the other saw the lease or lost the claim and backed off.
      expect(concurrent.map((r) => r.batchItemFailures.length).sort()).toEqual([0, 1]);
      expect(sequential.batchItemFailures).toEqual([]);
      const status = await getStatus(id);
      expect(status).toMatchObject({ state: 'sent', attempts: 1 });
    } finally {
      poller.start();
    }
  });

  it('a message SQS refuses: 503, nothing stored anywhere, and the Idempotency-Key free for the retry', async () => {
    // The same API against a queue that does not exist: the enqueue (the first step) fails.
    const broken = createApiHandler(
      createAwsDeps(
        loadApiConfig({ ...process.env, QUEUE_URL: `${resources.queueUrl}-gone` }),
        new Logger({ logLevel: 'CRITICAL' }),
      ),
    );
    const subject = `never queued ${randomBytes(4).toString('hex')}`;
    const request = { from: 'alice@example.com', to: ['unqueued@example.org'], subject, text: 'x' };
    const headers = { 'idempotency-key': `enqueue-failure-${subject}` };
    const refused = await broken(apiEvent({ method: 'POST', path: '/v1/messages', body: request, headers }));
    expect(refused.statusCode).toBe(503);
    expect(JSON.parse(refused.body!)).toMatchObject({ error: 'service_unavailable' });

    // No status record at all (no `failed` one either: the ledger is written only after the enqueue).
    const { Items = [] } = await resources.clients.documents.send(
      new ScanCommand({
        TableName: resources.table,
        FilterExpression: '#s = :s',
        ExpressionAttributeNames: { '#s': 'subject' },
        ExpressionAttributeValues: { ':s': subject },
      }),
    );
    expect(Items).toEqual([]);

    // The key was given back: the client's retry with it is a fresh submit, delivered once.
    const retried = await api(apiEvent({ method: 'POST', path: '/v1/messages', body: request, headers }));
    expect(retried.statusCode).toBe(202);
    expect(retried.headers?.['idempotent-replayed']).toBeUndefined();
    const id = (JSON.parse(retried.body!) as { id: string }).id;
    expect((await settled(id)).state).toBe('sent');
    expect(receivedBy('unqueued@example.org')).toHaveLength(1);
  });
});
