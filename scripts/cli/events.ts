// `smtpq events --follow`: every event as it happens. It subscribes a temporary SQS queue to the stack's
// event bus (a rule, as any user's own target would be), prints what arrives, and removes both on Ctrl-C.
// Against `npm run dev` the bus and the emulator come from the dev stack (/_inbox/api/stack); against a
// deployed stack, --bus (the EventBusName output) with the AWS credential chain.
import { randomUUID } from 'node:crypto';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import { subscribeQueue } from '../../lib/aws/event-bus.ts';
import { createEventBridgeClient, EVENT_SOURCE } from '../../lib/aws/event-publisher.ts';
import { EVENT_TYPES, type SmtpqEvent } from '../../lib/delivery/events.ts';
import { ApiClient, isLocalApi } from './api-client.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

interface EventsOptions {
  follow?: boolean;
  type?: string[];
  message?: string;
  json?: boolean;
  api?: string;
  bus?: string;
  region?: string;
}

export function register(program: Command): void {
  program
    .command('events')
    .description('print every event (message.*, recipient.*) as it happens, until Ctrl-C')
    .option('--follow', 'follow the event bus (required: there is no stored event history)')
    .option('--type <type...>', `only these types (${EVENT_TYPES.join(', ')})`)
    .option('--message <id>', "only this message's events")
    .option('--json', 'one JSON event per line, as published')
    .option('--api <url>', 'the dev stack (default $SMTPQ_API or http://localhost:3000)')
    .option('--bus <name>', 'a deployed stack: its event bus (output EventBusName; default $SMTPQ_EVENT_BUS)')
    .option('--region <region>', 'the bus region (default $AWS_REGION)')
    .action(async (options: EventsOptions) => {
      try {
        await follow(options);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

interface Target {
  busName: string;
  region: string;
  endpoint?: string;
}

async function target(options: EventsOptions): Promise<Target> {
  const busName = options.bus ?? process.env.SMTPQ_EVENT_BUS;
  if (busName) {
    const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
    if (!region) throw new UsageError('--bus needs a region: --region or AWS_REGION');
    return {
      busName,
      region,
      ...(process.env.AWS_ENDPOINT_URL ? { endpoint: process.env.AWS_ENDPOINT_URL } : {}),
    };
  }
  const client = new ApiClient({ api: options.api });
  if (!isLocalApi(client.base))
    throw new UsageError(
      'against a deployed stack, name its bus: --bus <EventBusName output> (or $SMTPQ_EVENT_BUS)',
    );
  const stack = await client.getJson<{ region?: string; awsEndpoint?: string; busName?: string }>(
    '/_inbox/api/stack',
  );
  if (!stack.busName)
    throw new UsageError('this dev stack publishes no events (it runs on existing resources)');
  // An emulator takes any credentials; the SDK needs some to sign with.
  if (stack.awsEndpoint) {
    process.env.AWS_ACCESS_KEY_ID ??= 'test';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  }
  return {
    busName: stack.busName,
    region: stack.region ?? 'us-east-1',
    ...(stack.awsEndpoint ? { endpoint: stack.awsEndpoint } : {}),
  };
}

async function follow(options: EventsOptions): Promise<void> {
  if (!options.follow)
    throw new UsageError('events needs --follow: events are pushed as they happen, none are stored');
  for (const type of options.type ?? [])
    if (!(EVENT_TYPES as readonly string[]).includes(type))
      throw new UsageError(`--type ${type}: not an event type (${EVENT_TYPES.join(', ')})`);
  const { busName, region, endpoint } = await target(options);
  const eventbridge = createEventBridgeClient({ region, endpoint });
  const sqs = new SQSClient({ region, ...(endpoint ? { endpoint } : {}) });
  const name = `smtpq-cli-${randomUUID().slice(0, 8)}`;
  const subscription = await subscribeQueue(eventbridge, sqs, {
    busName,
    ruleName: name,
    queueName: name,
    temporary: true,
    pattern: { source: [EVENT_SOURCE], ...(options.type?.length ? { 'detail-type': options.type } : {}) },
  });
  let stopping = false;
  const abort = new AbortController();
  const stop = () => {
    stopping = true;
    abort.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.error(`following ${busName} (Ctrl-C to stop)`);
  try {
    while (!stopping) {
      let messages: { Body?: string; ReceiptHandle?: string }[] = [];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: subscription.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 5,
          }),
          { abortSignal: abort.signal },
        );
        messages = out.Messages ?? [];
      } catch (error) {
        if (stopping) break;
        throw error;
      }
      for (const m of messages) {
        const event = (JSON.parse(m.Body ?? '{}') as { detail?: SmtpqEvent }).detail;
        if (!event || (options.message && event.data?.messageId !== options.message)) continue;
        console.log(options.json ? safeJson(event) : line(event));
      }
      if (messages.length > 0)
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: subscription.queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await subscription.remove();
    console.error('stopped; the temporary rule and queue are removed');
  }
}

/** One event as a line: time, type, message, recipient, reply or error. */
export function line(event: SmtpqEvent): string {
  const d = event.data;
  const reply = d.reply
    ? `${d.reply.code} ${d.reply.enhancedCode ?? ''} ${d.reply.text}`.replace(/\s+/g, ' ')
    : '';
  const extra = [
    d.recipient ?? '',
    reply || d.error || '',
    d.nextAttemptAt ? `next ${d.nextAttemptAt}` : '',
    d.sendAt ? `sendAt ${d.sendAt}` : '',
  ].filter(Boolean);
  return [event.timestamp, event.type.padEnd(22), d.messageId, ...extra.map((x) => safe(x))].join('  ');
}
