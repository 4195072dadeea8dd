// The AWS resources of `npm run dev` — ledger table, bucket, queue with its dead-letter queue (redrive), SMTP secret —
// created when missing, found when present, so a restart (or a second run against LocalStack) reuses them.
import { CreateBucketCommand, type CreateBucketCommandInput, HeadBucketCommand } from '@aws-sdk/client-s3';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
} from '@aws-sdk/client-sqs';
import type { AwsClients } from '../../lib/aws/clients.ts';
import { ensureLedgerTable } from '../../lib/aws/ledger-table.ts';

export interface SmtpSecretValue {
  username: string;
  password: string;
}

export interface DevResources {
  /** The ledger (DynamoDB table). */
  table: string;
  bucket: string;
  queueUrl: string;
  /** Undefined for an existing queue without a redrive policy. */
  dlqUrl?: string;
  secretArn: string;
  /** The ledger's stream (the events' source); undefined for existing resources, whose stack has its own
   *  events function. */
  streamArn?: string;
}

export interface DevResourceOptions {
  /** Names: `<prefix>-<account-ish suffix>` for the bucket, `<prefix>` / `<prefix>-dlq` for the queues. */
  prefix: string;
  /** Receives before a message moves to the DLQ. */
  maxReceiveCount: number;
  /** The queue's default visibility timeout (the worker sets its own back-off on deferred records). */
  visibilityTimeoutSeconds: number;
  /** What the secret must hold (the dev server's credentials, or SMTP_URL's). */
  secret: SmtpSecretValue;
  /** A bucket, queue and table that exist already (a deployed stack's): used as they are, nothing created. */
  existing?: { bucket: string; queueUrl: string; table: string };
  region: string;
  /**
   * Bucket names are global in real AWS: `<prefix>-<account>-<region>` (the account read from the queue's
   * ARN) instead of an emulator's `<prefix>-bucket`.
   */
  globalBucketName?: boolean;
}

function isMissing(error: unknown): boolean {
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return (
    name === 'NotFound' || name === 'NoSuchBucket' || name === 'ResourceNotFoundException' || status === 404
  );
}

async function ensureBucket(clients: AwsClients, bucket: string, region: string): Promise<void> {
  try {
    await clients.s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if (!isMissing(error)) throw error;
    // Outside us-east-1, S3 wants the region named (real S3 refuses the request otherwise).
    const location =
      region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region } };
    await clients.s3.send(
      new CreateBucketCommand({ Bucket: bucket, ...location } as CreateBucketCommandInput),
    );
  }
}

async function queueArn(clients: AwsClients, queueUrl: string): Promise<string> {
  const result = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  const arn = result.Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${queueUrl} has no QueueArn`);
  return arn;
}

/** CreateQueue returns the existing queue; the attributes are then set, in case an older run set others. */
async function ensureQueues(
  clients: AwsClients,
  options: DevResourceOptions,
): Promise<{ url: string; dlq: string }> {
  const dlq = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `${options.prefix}-dlq` })))
    .QueueUrl!;
  const attributes = {
    VisibilityTimeout: String(options.visibilityTimeoutSeconds),
    MessageRetentionPeriod: String(14 * 24 * 3600),
    RedrivePolicy: JSON.stringify({
      deadLetterTargetArn: await queueArn(clients, dlq),
      maxReceiveCount: options.maxReceiveCount,
    }),
  };
  const url = (await clients.sqs.send(new CreateQueueCommand({ QueueName: options.prefix }))).QueueUrl!;
  await clients.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
  return { url, dlq };
}

/** Finds or creates the secret and makes sure it holds `value`; returns its ARN. */
async function ensureSecret(clients: AwsClients, name: string, value: SmtpSecretValue): Promise<string> {
  const wanted = JSON.stringify(value);
  try {
    const described = await clients.secrets.send(new DescribeSecretCommand({ SecretId: name }));
    const current = await clients.secrets.send(new GetSecretValueCommand({ SecretId: name }));
    if (current.SecretString !== wanted) {
      await clients.secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: wanted }));
    }
    return described.ARN!;
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  const created = await clients.secrets.send(new CreateSecretCommand({ Name: name, SecretString: wanted }));
  return created.ARN!;
}

/** The dead-letter queue of an existing queue, from its redrive policy. */
async function deadLetterQueueOf(clients: AwsClients, queueUrl: string): Promise<string | undefined> {
  const result = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['RedrivePolicy'] }),
  );
  const policy = result.Attributes?.RedrivePolicy;
  if (!policy) return undefined;
  const arn = (JSON.parse(policy) as { deadLetterTargetArn?: string }).deadLetterTargetArn;
  const [, , , , account, name] = arn?.split(':') ?? [];
  if (!account || !name) return undefined;
  const found = await clients.sqs.send(
    new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }),
  );
  return found.QueueUrl;
}

export async function ensureDevResources(
  clients: AwsClients,
  options: DevResourceOptions,
): Promise<DevResources> {
  const secretArn = await ensureSecret(clients, `${options.prefix}/smtp`, options.secret);
  if (options.existing) {
    const { bucket, queueUrl, table } = options.existing;
    await clients.s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return { table, bucket, queueUrl, dlqUrl: await deadLetterQueueOf(clients, queueUrl), secretArn };
  }
  const table = `${options.prefix}-ledger`;
  const streamArn = await ensureLedgerTable(clients.dynamodb, table);
  const queues = await ensureQueues(clients, options);
  const account = (await queueArn(clients, queues.url)).split(':')[4];
  const bucket = options.globalBucketName
    ? `${options.prefix}-${account}-${options.region}`
    : `${options.prefix}-bucket`;
  await ensureBucket(clients, bucket, options.region);
  return { table, bucket, queueUrl: queues.url, dlqUrl: queues.dlq, secretArn, streamArn };
}
