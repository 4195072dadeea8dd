// The handler's dependencies built from lib/aws for one configuration (index.ts does this once per cold start).
import type { Logger } from '@aws-lambda-powertools/logger';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { S3IdempotencyStore } from '../../lib/aws/idempotency-store.ts';
import { S3PayloadStore } from '../../lib/aws/payload-store.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { S3StatusStore } from '../../lib/aws/status-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import type { ApiConfig } from '../../lib/config.ts';
import type { ApiDeps } from './deps.ts';

/**
 * How long the API waits for SQS to take a message. Well inside the function's 15 s timeout, so a hung call
 * still ends in a status record marked failed and a released Idempotency-Key — not in a `queued` record that
 * nothing will deliver while retries with the key are answered with its id.
 */
export const ENQUEUE_TIMEOUT_MS = 5000;

export function createAwsDeps(config: ApiConfig, logger: Logger): ApiDeps {
  const { s3, sqs } = createAwsClients(config.aws);
  const bucket = config.aws.bucket;
  return {
    config,
    status: new S3StatusStore(s3, bucket),
    transcripts: new S3TranscriptStore(s3, bucket),
    idempotency: new S3IdempotencyStore(s3, bucket),
    payloads: new S3PayloadStore(s3, bucket),
    queue: new SqsQueueProducer(sqs, config.aws.queueUrl, { callTimeoutMs: ENQUEUE_TIMEOUT_MS }),
    logger,
  };
}
