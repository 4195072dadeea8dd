// The events side of `npm run dev`: the event bus, the real events handler behind an emulated DynamoDB-stream
// event source (the ledger's committed changes → EventBridge), and — with WEBHOOK_URL — the webhook queue
// subscribed to the bus by a rule, drained by the real webhook handler behind the SQS event-source poller.
// The same resources as infra/template.yaml, built in the emulator.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { DeleteRuleCommand, RemoveTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { createEventsHandler } from '../../functions/events/handler.ts';
import { createWebhookHandler, WEBHOOK_MAX_TRIES } from '../../functions/webhook/handler.ts';
import type { AwsClients } from '../../lib/aws/clients.ts';
import { ensureEventBus, subscribeQueue } from '../../lib/aws/event-bus.ts';
import { createEventBridgeClient, EventBridgePublisher } from '../../lib/aws/event-publisher.ts';
import { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import { newWebhookSecret } from '../../lib/delivery/webhook-signature.ts';
import { EventLog } from './event-log.ts';
import { startSqsPoller } from './sqs-poller.ts';
import { startStreamPoller } from './stream-poller.ts';

export interface DevEventsOptions {
  clients: AwsClients;
  region: string;
  endpoint?: string;
  prefix: string;
  dataDir: string;
  streamArn: string;
  /** WEBHOOK_URL; the secret is WEBHOOK_SECRET, or one generated once into the data dir. */
  webhookUrl?: string;
  webhookSecret?: string;
  /** Something was published or tried: open inbox pages refresh. */
  onChange(): void;
}

export interface DevEvents {
  busName: string;
  busArn: string;
  log: EventLog;
  webhook?: { url: string; secret: string; queueUrl: string; dlqUrl: string };
  /** Resolves once every ledger change made before the call is published. */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDevEvents(options: DevEventsOptions): Promise<DevEvents> {
  const { clients, region, endpoint, prefix } = options;
  const eventbridge = createEventBridgeClient({ region, endpoint });
  const busName = `${prefix}-events`;
  const busArn = await ensureEventBus(eventbridge, busName);
  const log = new EventLog(path.join(options.dataDir, 'events.jsonl'));
  const logger = new Logger({
    serviceName: 'smtpq-dev-events',
    // Quiet unless POWERTOOLS_LOG_LEVEL asks, like the handlers' own loggers in the dev stack.
    logLevel: (process.env.POWERTOOLS_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN',
  });
  const stops: Array<() => Promise<void>> = [];

  const ruleName = `${prefix}-webhooks`;
  let webhook: DevEvents['webhook'];
  if (options.webhookUrl) {
    const secret = options.webhookSecret ?? (await devWebhookSecret(options.dataDir));
    const dlqUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `${ruleName}-dlq` })))
      .QueueUrl!;
    const dlqArn = (
      await clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }),
      )
    ).Attributes!.QueueArn!;
    // As the template's WebhookQueue: 4 days kept, the tries of the schedule, then the dead-letter queue.
    const subscription = await subscribeQueue(eventbridge, clients.sqs, {
      busName,
      ruleName,
      queueName: ruleName,
      queueAttributes: {
        MessageRetentionPeriod: String(4 * 86_400),
        VisibilityTimeout: '60',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: WEBHOOK_MAX_TRIES }),
      },
    });
    const handler = createWebhookHandler({
      url: options.webhookUrl,
      secret: async () => secret,
      timeoutMs: 10_000,
      queue: new SqsQueueProducer(clients.sqs, subscription.queueUrl),
      logger,
      onAttempt: (attempt) => {
        log.recordAttempt(attempt);
        options.onChange();
      },
    });
    const poller = await startSqsPoller({
      sqs: clients.sqs,
      queueUrl: subscription.queueUrl,
      region,
      batchSize: 10,
      // One invocation at a time: a message's events reach the listener in order (retries aside).
      concurrency: 1,
      functionName: 'smtpq-dev-webhook',
      handler: (event) => handler(event),
    });
    stops.push(() => poller.stop());
    webhook = { url: options.webhookUrl, secret, queueUrl: subscription.queueUrl, dlqUrl };
  } else {
    // A rule an earlier run made for its WEBHOOK_URL would fill a queue nobody reads.
    await eventbridge
      .send(new RemoveTargetsCommand({ Rule: ruleName, EventBusName: busName, Ids: ['queue'] }))
      .then(() => eventbridge.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: busName })))
      .catch(() => undefined);
  }

  const publisher = new EventBridgePublisher(eventbridge, busName);
  const events = createEventsHandler({
    publish: (list) => publisher.publish(list),
    logger,
    onPublished: (published) => {
      if (published.length === 0) return;
      log.recordEvents(published);
      options.onChange();
    },
  });
  // From the latest change on: a restored snapshot writes every record again, which is no new event.
  const stream = await startStreamPoller({
    streams: new DynamoDBStreamsClient({ region, ...(endpoint ? { endpoint } : {}) }),
    streamArn: options.streamArn,
    region,
    startAt: 'LATEST',
    handler: events,
  });
  stops.push(async () => {
    await stream.drain();
    await stream.stop();
  });

  return {
    busName,
    busArn,
    log,
    webhook,
    drain: () => stream.drain(),
    async stop() {
      for (const stop of stops.splice(0).reverse()) await stop();
    },
  };
}

/** The dev webhook secret: generated once, kept in the data dir (mode 0600), shown in the banner. */
async function devWebhookSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'webhook-secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = newWebhookSecret();
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
