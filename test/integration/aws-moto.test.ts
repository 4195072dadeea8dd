// The moto harness itself: the resources createTestResources makes are real and isolated, and SQS redrive
// really moves a message that keeps failing into the DLQ.
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, inject, it } from 'vitest';
import { loadApiConfig } from '../../lib/config.ts';
import { createTestResources } from '../support/moto.ts';

const endpoint = inject('motoEndpoint');

describe('moto test resources', () => {
  it('creates a bucket, a queue and a secret, and an env that lib/config accepts', async () => {
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
      queueUrl: resources.queueUrl,
    });
  });

  it('gives each call its own resources', async () => {
    const [a, b] = await Promise.all([createTestResources(endpoint), createTestResources(endpoint)]);
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
