// Per-test-file AWS resources in the shared moto server: a ledger table, a bucket, a queue with its DLQ, an SMTP secret,
// each uniquely named so test files running in parallel never see each other's data.
import { randomUUID } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { type AwsClients, createAwsClients } from '../../lib/aws/clients.ts';
import { ensureLedgerTable } from '../../lib/aws/ledger-table.ts';

export const TEST_REGION = 'us-east-1';

/** moto accepts any credentials; the SDK only needs something to sign with. */
export const fakeCredentials = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
} as const;

export interface TestResourceOptions {
  /** Receives before SQS moves a message to the DLQ (RedrivePolicy maxReceiveCount). Default 3. */
  maxReceiveCount?: number;
  /** Queue visibility timeout in seconds. Default 2 (small, so redelivery tests stay quick). */
  visibilityTimeoutSeconds?: number;
  /** SMTP credentials stored in the secret. Default a generated pair. */
  smtpCredentials?: { username: string; password: string };
}

export interface TestResources {
  /** The ledger table (DynamoDB, with its stream and state index). */
  table: string;
  tableStreamArn: string;
  bucket: string;
  queueName: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  secretArn: string;
  smtpCredentials: { username: string; password: string };
  /** Environment for lib/config.ts (loadApiConfig/loadWorkerConfig), plus fake credentials.
   * SMTP_SECRET_ARN is left out (a worker without it does no AUTH); add `SMTP_SECRET_ARN: secretArn` to use it. */
  env: {
    AWS_ENDPOINT_URL: string;
    AWS_REGION: string;
    BUCKET_NAME: string;
    QUEUE_URL: string;
    LEDGER_TABLE: string;
    /** Any sender: the tests of the allowed-senders rule set their own. */
    ALLOWED_FROM_DOMAINS: string;
    AWS_ACCESS_KEY_ID: string;
    AWS_SECRET_ACCESS_KEY: string;
  };
  /** SDK clients pointed at the emulator. */
  clients: AwsClients;
}

/** Creates a fresh bucket, queue + DLQ (with redrive) and secret; also puts fake credentials into process.env. */
export async function createTestResources(
  endpoint: string,
  options: TestResourceOptions = {},
): Promise<TestResources> {
  for (const [name, value] of Object.entries(fakeCredentials)) process.env[name] ??= value;
  const suffix = randomUUID().slice(0, 8);
  const clients = createAwsClients({ region: TEST_REGION, endpoint });
  const bucket = `smtpq-test-${suffix}`;
  const queueName = `smtpq-test-${suffix}`;

  await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const table = `smtpq-test-${suffix}`;
  const tableStreamArn = await ensureLedgerTable(clients.dynamodb, table);
  const dlq = await clients.sqs.send(new CreateQueueCommand({ QueueName: `${queueName}-dlq` }));
  const dlqUrl = dlq.QueueUrl!;
  const dlqArn = await queueArn(clients, dlqUrl);
  const queue = await clients.sqs.send(
    new CreateQueueCommand({
      QueueName: queueName,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 2),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlqArn,
          maxReceiveCount: options.maxReceiveCount ?? 3,
        }),
      },
    }),
  );
  const queueUrl = queue.QueueUrl!;
  const smtpCredentials = options.smtpCredentials ?? { username: `user-${suffix}`, password: randomUUID() };
  const secret = await clients.secrets.send(
    new CreateSecretCommand({
      Name: `smtpq-test-${suffix}/smtp`,
      SecretString: JSON.stringify(smtpCredentials),
    }),
  );

  return {
    table,
    tableStreamArn,
    bucket,
    queueName,
    queueUrl,
    queueArn: await queueArn(clients, queueUrl),
    dlqUrl,
    dlqArn,
    secretArn: secret.ARN!,
    smtpCredentials,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: TEST_REGION,
      BUCKET_NAME: bucket,
      QUEUE_URL: queueUrl,
      LEDGER_TABLE: table,
      ALLOWED_FROM_DOMAINS: '*',
      ...fakeCredentials,
    },
    clients,
  };
}

async function queueArn(clients: AwsClients, queueUrl: string): Promise<string> {
  const attributes = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  return attributes.Attributes!.QueueArn!;
}
