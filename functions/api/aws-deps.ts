// The handler's dependencies built from lib/aws for one configuration (index.ts does this once per cold start).
import type { Logger } from '@aws-lambda-powertools/logger';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { DynamoIdempotencyStore } from '../../lib/aws/idempotency-store.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { S3PayloadStore } from '../../lib/aws/payload-store.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { unsubscribeKeyReader } from '../../lib/aws/smtp-secret.ts';
import { DynamoSuppressionStore } from '../../lib/aws/suppression-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import type { ApiConfig } from '../../lib/config.ts';
import type { ApiDeps } from './deps.ts';

/**
 * How long the API waits for SQS to take a message. Well inside the function's 15 s timeout, so a hung call
 * still ends in a released Idempotency-Key and a 503 — not in a Lambda timeout with the client left guessing.
 */
export const ENQUEUE_TIMEOUT_MS = 5000;

export function createAwsDeps(config: ApiConfig, logger: Logger): ApiDeps {
  const { s3, sqs, documents, secrets } = createAwsClients(config.aws);
  const { bucket, table, retentionDays } = config.aws;
  return {
    config,
    status: new DynamoLedger(documents, table, retentionDays),
    transcripts: new S3TranscriptStore(s3, bucket),
    idempotency: new DynamoIdempotencyStore(documents, table),
    suppressions: new DynamoSuppressionStore(documents, table),
    unsubscribeKey: unsubscribeKeyReader(secrets, config.unsubscribeKey),
    payloads: new S3PayloadStore(s3, bucket),
    queue: new SqsQueueProducer(sqs, config.queueUrl, { callTimeoutMs: ENQUEUE_TIMEOUT_MS }),
    logger,
  };
}
