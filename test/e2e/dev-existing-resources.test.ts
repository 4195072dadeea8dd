// `npm run dev` against resources that exist already (BUCKET_NAME + QUEUE_URL + LEDGER_TABLE, e.g. a deployed
// stack's on LocalStack or AWS): it uses them as they are — the DLQ found through the queue's redrive policy —
// and creates no queue, bucket or ledger table of its own.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { submit, waitFor } from './dev-harness.ts';

const endpoint = inject('motoEndpoint');
const prefix = `smtpq-e2e-${randomUUID().slice(0, 8)}`;
let resources: TestResources;
let dev: DevStack;
let dataDir: string;

beforeAll(async () => {
  resources = await createTestResources(endpoint);
  // The user's settings are read when scripts/local/dev.ts loads, so they are set before it is imported.
  process.env.BUCKET_NAME = resources.bucket;
  process.env.QUEUE_URL = resources.queueUrl;
  process.env.LEDGER_TABLE = resources.table;
  const { startDev } = await import('../../scripts/local/dev.ts');
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-dev-existing-'));
  dev = await startDev({
    port: 0,
    smtpPort: 0,
    dataDir,
    awsEndpoint: endpoint,
    resourcePrefix: prefix,
    log: () => {},
  });
});

afterAll(async () => {
  await dev?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm run dev with BUCKET_NAME, QUEUE_URL and LEDGER_TABLE', () => {
  it('delivers through the given queue, records in the given table and bucket, and creates none of its own', async () => {
    expect(dev.resources).toMatchObject({
      table: resources.table,
      bucket: resources.bucket,
      queueUrl: resources.queueUrl,
      dlqUrl: resources.dlqUrl,
    });
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['b@example.com'],
      subject: 's',
      text: 't',
    });
    const record = await waitFor('sent', async () => {
      const current = (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
      return current.state === 'sent' ? current : undefined;
    });
    // The status lives in the given ledger table (read here as the worker wrote it, lease and all)…
    const ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
    const stored = await ledger.get(id);
    expect(stored?.value).toMatchObject({ id, state: 'sent', messageId: record.messageId, attempts: 1 });
    expect(stored!.value.recipients).toMatchObject([{ address: 'b@example.com', state: 'delivered' }]);
    // …and its transcript in the given bucket: one object per connection, none per message.
    const [ref] = stored!.value.transcripts;
    expect(ref?.key).toMatch(/^transcripts\/\d{4}-\d{2}-\d{2}\/[^/]+-\d+\.log$/);
    await resources.clients.s3.send(new HeadObjectCommand({ Bucket: resources.bucket, Key: ref!.key }));
    const listed = await resources.clients.s3.send(new ListObjectsV2Command({ Bucket: resources.bucket }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys.filter((k) => k.startsWith('messages/') || k.includes(id))).toEqual([]);

    // Nothing of its own: no bucket, no table, no queue under the dev prefix.
    await expect(
      resources.clients.s3.send(new HeadBucketCommand({ Bucket: `${prefix}-bucket` })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    await expect(
      resources.clients.dynamodb.send(new DescribeTableCommand({ TableName: `${prefix}-ledger` })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(
      resources.clients.sqs.send(new GetQueueUrlCommand({ QueueName: prefix })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
  });
});
