// `npm run dev` against resources that exist already (BUCKET_NAME + QUEUE_URL, e.g. a deployed stack's on
// LocalStack or AWS): it uses them as they are — the DLQ found through the queue's redrive policy — and
// creates no queue or bucket of its own.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HeadBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
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

describe('npm run dev with BUCKET_NAME and QUEUE_URL', () => {
  it('delivers through the given queue into the given bucket and creates neither of its own', async () => {
    expect(dev.resources).toMatchObject({
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
    await waitFor('sent', async () => {
      const record = (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
      return record.state === 'sent' ? true : undefined;
    });
    await resources.clients.s3.send(
      new HeadObjectCommand({ Bucket: resources.bucket, Key: `messages/${id}.json` }),
    );
    await expect(
      resources.clients.s3.send(new HeadBucketCommand({ Bucket: `${prefix}-bucket` })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });
});
