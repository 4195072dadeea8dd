// The worker's dependencies from its configuration: lib/aws adapters, the SMTP connector with credentials
// from Secrets Manager (cached between invocations), Powertools logger and metrics.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { type AwsClients, createAwsClients } from '../../lib/aws/clients.ts';
import { dkimKeysReader } from '../../lib/aws/dkim-keys.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { S3PayloadStore } from '../../lib/aws/payload-store.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { DynamoRelayGate } from '../../lib/aws/relay-gate.ts';
import { SmtpSecretReader, unsubscribeKeyReader } from '../../lib/aws/smtp-secret.ts';
import { DynamoSuppressionStore } from '../../lib/aws/suppression-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import type { WorkerConfig } from '../../lib/config.ts';
import { relayLimitSettings } from '../../lib/delivery/relay-limit.ts';
import type { Connect } from '../../lib/delivery/relay-sender.ts';
import { resolveOptions, SmtpConnection, SmtpError } from '../../lib/smtp/index.ts';
import type { WorkerDeps } from './worker.ts';

const SERVICE_NAME = 'smtpq-worker';

/** Namespace from POWERTOOLS_METRICS_NAMESPACE; without one (local runs) metrics still print as EMF to stdout. */
export function createMetrics(): Metrics {
  return new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || 'smtpq',
    serviceName: SERVICE_NAME,
  });
}

export function createLogger(): Logger {
  return new Logger({ serviceName: SERVICE_NAME });
}

/** Opens SMTP connections with the relay's credentials, read (and cached) only when a connection is made. */
function smtpConnector(
  logger: Logger,
  credentials?: () => Promise<{ username: string; password: string }>,
): Connect {
  return async (options) => {
    if (!credentials) return SmtpConnection.connect(options);
    let secret: { username: string; password: string };
    try {
      secret = await credentials();
    } catch (error) {
      // Never the secret itself: the reader's errors name the secret and the problem only.
      logger.error('the SMTP credentials could not be read (SMTP_SECRET_ARN)', { error });
      // The message goes into the status record and the transcript, which API callers read: a stable code
      // and what happened, never the cause's text (an AccessDenied names the account and the worker's role).
      throw new SmtpError(
        'SMTP_CREDENTIALS',
        "the relay's credentials could not be read from Secrets Manager (the worker's log has why)",
        { stage: 'auth', cause: error },
      );
    }
    return SmtpConnection.connect({ ...options, auth: { user: secret.username, pass: secret.password } });
  };
}

export function createWorkerDeps(
  config: WorkerConfig,
  overrides: Partial<WorkerDeps> & { clients?: AwsClients } = {},
): WorkerDeps {
  const { s3, sqs, secrets, documents } = overrides.clients ?? createAwsClients(config.aws);
  const { bucket, table, retentionDays } = config.aws;
  const secret = config.smtp.secretArn ? new SmtpSecretReader(secrets, config.smtp.secretArn) : undefined;
  const { host, port, tls } = config.smtp;
  const relay = `${host}:${resolveOptions({ host, port, tls }).port}`;
  const logger = overrides.logger ?? createLogger();
  return {
    config,
    status: new DynamoLedger(documents, table, retentionDays),
    suppressions: new DynamoSuppressionStore(documents, table),
    transcripts: new S3TranscriptStore(s3, bucket),
    payloads: new S3PayloadStore(s3, bucket),
    queue: new SqsQueueProducer(sqs, config.queueUrl),
    // The relay's shared limit (SMTP_MAX_MESSAGES_PER_SECOND; burst: one second's worth) and pause.
    gate: new DynamoRelayGate(
      documents,
      table,
      relay,
      relayLimitSettings({ ratePerSecond: config.relayMaxRate }),
    ),
    connect: smtpConnector(logger, secret ? () => secret.get() : undefined),
    unsubscribeKey: unsubscribeKeyReader(secrets, config.unsubscribeKey),
    dkimKeys: dkimKeysReader(secrets, config.dkim),
    logger,
    metrics: overrides.metrics ?? createMetrics(),
    ...overrides,
  };
}
