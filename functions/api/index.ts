// API Lambda entry (API Gateway HTTP API, payload format 2.0). Configuration and AWS clients are set up
// once per cold start; a configuration error fails the init with a message naming the variable.
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { S3IdempotencyStore } from '../../lib/aws/idempotency-store.ts';
import { S3PayloadStore } from '../../lib/aws/payload-store.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { S3StatusStore } from '../../lib/aws/status-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import { type ApiConfig, loadApiConfig } from '../../lib/config.ts';
import { createApiHandler } from './app.ts';
import type { ApiDeps } from './deps.ts';

const logger = new Logger({ serviceName: 'smtpq-api' });

export function createDeps(config: ApiConfig): ApiDeps {
  const { s3, sqs } = createAwsClients(config.aws);
  const bucket = config.aws.bucket;
  return {
    config,
    status: new S3StatusStore(s3, bucket),
    transcripts: new S3TranscriptStore(s3, bucket),
    idempotency: new S3IdempotencyStore(s3, bucket),
    payloads: new S3PayloadStore(s3, bucket),
    queue: new SqsQueueProducer(sqs, config.aws.queueUrl),
    logger,
  };
}

function loadConfig(): ApiConfig {
  try {
    return loadApiConfig();
  } catch (error) {
    logger.critical('API configuration invalid', { error });
    throw error;
  }
}

const run = createApiHandler(createDeps(loadConfig()));

export function handler(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  return run(event);
}
