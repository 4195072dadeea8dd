// When SQS refuses, nothing is lost silently: the API handler pointed at a queue that does not exist (a real
// SQS error from moto, not a mock) answers a single submit with a 503 carrying the request id, reports every
// batch item as enqueue_failed, and leaves each status record failed with the reason.
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { Logger } from '@aws-lambda-powertools/logger';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { S3StatusStore } from '../../lib/aws/status-store.ts';
import { loadApiConfig } from '../../lib/config.ts';
import {
  type ApiHandler,
  apiEvent,
  apiOnFreshResources,
  drainQueue,
  parseBody,
  refuseKeyReleases,
  validRequest,
} from './api-harness.ts';

let broken: ApiHandler;
let status: S3StatusStore;

// api.handler is the handler on the queue that works.
const api = apiOnFreshResources();

beforeAll(async () => {
  const config = loadApiConfig();
  const missingQueue = `${api.resources.queueUrl}-missing`;
  const quiet = new Logger({ serviceName: 'smtpq-api-test', logLevel: 'SILENT' });
  broken = createApiHandler(
    createAwsDeps({ ...config, aws: { ...config.aws, queueUrl: missingQueue } }, quiet),
  );
  status = new S3StatusStore(api.resources.clients.s3, api.resources.bucket);
});

/** Ids of every status record in the bucket (messages/<id>.json). */
async function listStatusIds(): Promise<string[]> {
  const listing = await api.resources.clients.s3.send(
    new ListObjectsV2Command({ Bucket: api.resources.bucket, Prefix: 'messages/' }),
  );
  return (listing.Contents ?? []).map((object) => object.Key!.slice('messages/'.length, -'.json'.length));
}

const submit = (handler: ApiHandler, headers: Record<string, string> = {}) =>
  handler(apiEvent({ method: 'POST', path: '/v1/messages', body: validRequest, headers }));

describe('the queue refuses', () => {
  it('answers a single submit with 503 and the request id, and frees its Idempotency-Key', async () => {
    // Act
    const failed = await submit(broken, { 'Idempotency-Key': 'retry-me' });
    const retried = await submit(api.handler, { 'Idempotency-Key': 'retry-me' });

    // Assess
    expect(failed.statusCode).toBe(503);
    const body = parseBody(failed);
    expect(body).toMatchObject({ error: 'service_unavailable' });
    expect(body.requestId).toMatch(/^req-/);
    expect(retried.statusCode).toBe(202);
    expect(retried.headers).not.toHaveProperty('idempotent-replayed');
    const queued = (await drainQueue(api.resources)) as { id: string }[];
    expect(queued.map((m) => m.id)).toEqual([parseBody(retried).id]);
  });

  it('lets a retry resubmit when the failed request could not even release its Idempotency-Key', async () => {
    // Prepare: the queue refuses, and S3 refuses the release of the key too.
    const config = loadApiConfig();
    const deps = createAwsDeps(
      { ...config, aws: { ...config.aws, queueUrl: `${api.resources.queueUrl}-missing` } },
      new Logger({ logLevel: 'SILENT' }),
    );
    refuseKeyReleases(deps);
    const stuck = createApiHandler(deps);

    // Act
    const failed = await submit(stuck, { 'Idempotency-Key': 'unreleased' });
    const retried = await submit(api.handler, { 'Idempotency-Key': 'unreleased' });

    // Assess: the retry is a new submission (the failed id was never enqueued), not a replay of that id.
    expect(failed.statusCode).toBe(503);
    expect(retried.statusCode).toBe(202);
    expect(retried.headers).not.toHaveProperty('idempotent-replayed');
    const queued = (await drainQueue(api.resources)) as { id: string }[];
    expect(queued.map((m) => m.id)).toEqual([parseBody(retried).id]);
    const again = await submit(api.handler, { 'Idempotency-Key': 'unreleased' });
    expect(parseBody(again).id).toBe(parseBody(retried).id);
  });

  it('gives up on an SQS call that never answers, marks the record failed and frees the key', async () => {
    // Prepare: SQS behind a TCP server that accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const { sqs } = createAwsClients({ region: 'us-east-1', endpoint });
    const deps = createAwsDeps(loadApiConfig(), new Logger({ logLevel: 'SILENT' }));
    deps.queue = new SqsQueueProducer(sqs, `${endpoint}/123456789012/q`, { callTimeoutMs: 300 });
    const hung = createApiHandler(deps);

    try {
      // Act
      const failed = await submit(hung, { 'Idempotency-Key': 'hung-sqs' });
      const retried = await submit(api.handler, { 'Idempotency-Key': 'hung-sqs' });

      // Assess
      expect(failed.statusCode).toBe(503);
      expect(retried.statusCode).toBe(202);
      const queued = (await drainQueue(api.resources)) as { id: string }[];
      expect(queued.map((m) => m.id)).toEqual([parseBody(retried).id]);
      const ids = (await listStatusIds()).filter((id) => id !== parseBody(retried).id);
      const records = await Promise.all(ids.map(async (id) => (await status.get(id))!.value));
      const reason = 'not enqueued: TimeoutError: SQS did not answer within 300 ms';
      const failedRecords = records.filter((r) => r.idempotencyKey === 'hung-sqs');
      expect(failedRecords).toMatchObject([{ state: 'failed', error: reason, attempts: 0 }]);
      expect(failedRecords[0]!.lease).toBeUndefined();
      for (const recipient of failedRecords[0]!.recipients) {
        expect(recipient).toMatchObject({
          state: 'failed',
          error: reason,
          updatedAt: failedRecords[0]!.updatedAt,
        });
      }
    } finally {
      sqs.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('reports every valid batch item as enqueue_failed and marks its status record failed', async () => {
    const response = await broken(
      apiEvent({
        method: 'POST',
        path: '/v1/messages/batch',
        body: { messages: [validRequest, { ...validRequest, from: 'bad' }, validRequest] },
      }),
    );

    expect(response.statusCode).toBe(202);
    const { results, queued } = parseBody(response) as {
      results: { id?: string; status?: string; error: { code: string; message?: string } }[];
      queued: number;
    };
    expect(queued).toBe(0);
    expect(results.map((r) => r.error.code)).toEqual([
      'enqueue_failed',
      'validation_failed',
      'enqueue_failed',
    ]);
    for (const item of [results[0]!, results[2]!]) {
      expect(item.status).toBe('failed');
      const record = (await status.get(item.id!))!.value;
      expect(record.state).toBe('failed');
      expect(record.error).toMatch(/^not enqueued: /);
      expect(record.recipients.every((r) => r.state === 'failed')).toBe(true);
    }
  });
});
