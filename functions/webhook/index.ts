// Webhook Lambda entry (the webhook queue as SQS event source, ReportBatchItemFailures). The signing secret
// comes from Secrets Manager (WEBHOOK_SECRET_ARN), cached for 5 minutes so a rotation is picked up.
import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { CachedSecret, parseWebhookSecret } from '../../lib/aws/smtp-secret.ts';
import { loadWebhookConfig, type WebhookConfig } from '../../lib/config.ts';
import { createWebhookHandler, type WebhookDeps } from './handler.ts';

const logger = new Logger({ serviceName: 'smtpq-webhook' });

/** The handler's dependencies for one configuration (scripts/local/dev.ts adds its own onAttempt). */
export function createWebhookDeps(config: WebhookConfig, log: Logger = logger): WebhookDeps {
  const common = {
    region: config.aws.region,
    ...(config.aws.endpoint ? { endpoint: config.aws.endpoint } : {}),
  };
  const { secret } = config;
  const reader =
    'arn' in secret
      ? new CachedSecret(new SecretsManagerClient(common), secret.arn, parseWebhookSecret)
      : undefined;
  return {
    url: config.url,
    secret: reader ? () => reader.get() : async () => (secret as { value: string }).value,
    timeoutMs: config.timeoutMs,
    queue: new SqsQueueProducer(new SQSClient(common), config.queueUrl),
    logger: log,
  };
}

function init() {
  try {
    return createWebhookHandler(createWebhookDeps(loadWebhookConfig()));
  } catch (error) {
    logger.critical('webhook configuration invalid', { error });
    throw error;
  }
}

const run = init();

export function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  return run(event);
}
