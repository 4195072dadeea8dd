// The moto harness itself: the resources createTestResources makes are real and isolated (the ledger table
// with its state index, stream and TTL as the template declares them), and SQS redrive really moves a
// message that keeps failing into the DLQ.
import { DescribeTableCommand, DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, inject, it } from 'vitest';
import { ensureLedgerTable } from '../../lib/aws/ledger-table.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import { createTestResources } from '../support/moto.ts';

const endpoint = inject('motoEndpoint');

describe('moto test resources', () => {
  it('creates a table, a bucket, a queue and a secret, and an env that lib/config accepts', async () => {
    const resources = await createTestResources(endpoint);
    const { s3, secrets } = resources.clients;

    await s3.send(new HeadBucketCommand({ Bucket: resources.bucket }));
    const secret = await secrets.send(new GetSecretValueCommand({ SecretId: resources.secretArn }));
    expect(JSON.parse(secret.SecretString!)).toEqual(resources.smtpCredentials);
    const config = loadApiConfig(resources.env);
    expect(config.aws).toEqual({
      region: 'us-east-1',
      endpoint,
      bucket: resources.bucket,
      table: resources.table,
      retentionDays: 30,
    });
    expect(config.queueUrl).toBe(resources.queueUrl);
    const worker = loadWorkerConfig({
      ...resources.env,
      SMTP_HOST: 'relay.example.org',
      RETENTION_DAYS: '7',
    });
    expect(worker.aws).toMatchObject({ table: resources.table, retentionDays: 7 });
  });

  it('creates the ledger table with its state index (keys only), its stream and TTL on expiresAt', async () => {
    const resources = await createTestResources(endpoint);
    const { dynamodb } = resources.clients;

    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: resources.table }));
    const ttl = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: resources.table }));

    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(Table?.GlobalSecondaryIndexes).toMatchObject([
      {
        IndexName: 'byState',
        KeySchema: [
          { AttributeName: 'listState', KeyType: 'HASH' },
          { AttributeName: 'listAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ]);
    expect(Table?.StreamSpecification).toEqual({ StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' });
    expect(resources.tableStreamArn).toBe(Table?.LatestStreamArn);
    expect(ttl.TimeToLiveDescription).toMatchObject({
      AttributeName: 'expiresAt',
      TimeToLiveStatus: 'ENABLED',
    });
  });

  it('ensureLedgerTable leaves an existing table as it is, also when called concurrently', async () => {
    const resources = await createTestResources(endpoint);

    const arns = await Promise.all([
      ensureLedgerTable(resources.clients.dynamodb, resources.table),
      ensureLedgerTable(resources.clients.dynamodb, resources.table),
    ]);

    expect(arns).toEqual([resources.tableStreamArn, resources.tableStreamArn]);
    const fresh = `${resources.table}-fresh`;
    const created = await Promise.all([
      ensureLedgerTable(resources.clients.dynamodb, fresh),
      ensureLedgerTable(resources.clients.dynamodb, fresh),
    ]);
    expect(created[0]).toMatch(/^arn:aws:dynamodb:/);
    expect(created[1]).toBe(created[0]);
  });

  it('gives each call its own resources', async () => {
    const [a, b] = await Promise.all([createTestResources(endpoint), createTestResources(endpoint)]);
    expect(a.table).not.toBe(b.table);
    expect(a.bucket).not.toBe(b.bucket);
    expect(a.queueUrl).not.toBe(b.queueUrl);
    expect(a.dlqUrl).not.toBe(b.dlqUrl);
  });

  it('redrives a message received maxReceiveCount times to the DLQ', async () => {
    const resources = await createTestResources(endpoint, {
      maxReceiveCount: 2,
      visibilityTimeoutSeconds: 1,
    });
    const { sqs } = resources.clients;
    await sqs.send(new SendMessageCommand({ QueueUrl: resources.queueUrl, MessageBody: 'keeps failing' }));

    // Receive without deleting, as a worker that fails every time: after 2 receives SQS moves it.
    let receives = 0;
    for (let round = 0; round < 10 && receives < 2; round++) {
      const got = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: resources.queueUrl, WaitTimeSeconds: 2, VisibilityTimeout: 1 }),
      );
      receives += got.Messages?.length ?? 0;
    }
    expect(receives).toBe(2);

    let inDlq: string | undefined;
    for (let round = 0; round < 10 && !inDlq; round++) {
      // The third receive is what triggers the move in SQS (and in moto).
      await sqs.send(new ReceiveMessageCommand({ QueueUrl: resources.queueUrl, WaitTimeSeconds: 1 }));
      const got = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: resources.dlqUrl, WaitTimeSeconds: 1 }),
      );
      inDlq = got.Messages?.[0]?.Body;
    }
    expect(inDlq).toBe('keeps failing');
  });
});
