// `smtpq events --follow`: every event as it happens. It subscribes a temporary SQS queue to the stack's
// event bus (a rule, as any user's own target would be), prints what arrives, and removes both on Ctrl-C.
// Against `npm run dev` the bus and the emulator come from the dev stack (/_inbox/api/stack); against a
// deployed stack, --bus (the EventBusName output) with the AWS credential chain.
// There is no stored history of events: a subscription sees what is published after it starts.
import { randomUUID } from 'node:crypto';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import type { QueueSubscription } from '../../lib/aws/event-bus.ts';
import { EVENT_TYPES, type SmtpqEvent } from '../../lib/delivery/events.ts';
import { ApiClient, ApiError, isLocalApi } from './api-client.ts';
import { EXIT } from './send-report.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

/** As lib/aws/event-publisher.ts publishes them (not imported: it would load the EventBridge SDK up front). */
const EVENT_SOURCE = 'smtpq';
const MESSAGE_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
/** Event ids printed lately: EventBridge and SQS deliver at least once, a repeat is not printed twice. */
const REMEMBERED_IDS = 10_000;

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
    .option('--type <type...>', `only these types (repeatable): ${EVENT_TYPES.join(', ')}`)
    .option('--message <id>', "only this message's events")
    .option('--json', 'one JSON object per line: the event as published ({ id, type, timestamp, data })')
    .option('--api <url>', 'the dev stack (default $SMTPQ_API or http://localhost:3000)')
    .option('--bus <name>', 'a deployed stack: its event bus (output EventBusName; default $SMTPQ_EVENT_BUS)')
    .option('--region <region>', 'the bus region (default $AWS_REGION)')
    .addHelpText(
      'after',
      '\nIt puts a rule on the bus and an SQS queue behind it (both named smtpq-cli-<random>), prints what\n' +
        'arrives, and removes both on Ctrl-C (or SIGTERM). Against a deployed stack your AWS credentials need\n' +
        'events:PutRule, PutTargets, RemoveTargets, DeleteRule and sqs:CreateQueue, GetQueueAttributes,\n' +
        'SetQueueAttributes, ReceiveMessage, DeleteMessage, DeleteQueue.',
    )
    .action(async (options: EventsOptions) => {
      try {
        process.exitCode = await follow(options);
      } catch (error) {
        process.exitCode = reportEventsError(error);
      }
    });
}

interface Target {
  busName: string;
  region: string;
  endpoint?: string;
}

/** Checks the options before anything is created: a usage error, exit 64. */
function checkOptions(options: EventsOptions): void {
  if (!options.follow)
    throw new UsageError(
      'events needs --follow: events are pushed as they happen and none are stored ' +
        "(a message's current state: smtpq status ID; earlier messages: smtpq list)",
    );
  for (const type of options.type ?? [])
    if (!(EVENT_TYPES as readonly string[]).includes(type))
      throw new UsageError(`--type ${type}: not an event type (${EVENT_TYPES.join(', ')})`);
  if (options.message !== undefined && !MESSAGE_ID.test(options.message))
    throw new UsageError(`--message ${options.message}: not a message id (26 characters, as submit prints)`);
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
  let stack: { region?: string; awsEndpoint?: string; busName?: string };
  try {
    stack = await client.getJson('/_inbox/api/stack');
  } catch (error) {
    if (error instanceof ApiError && error.status === 404)
      throw new ApiError(
        404,
        'not_a_dev_stack',
        `${client.base.origin} serves no /_inbox/api/stack: is it \`npm run dev\`? (a deployed stack: --bus)`,
      );
    throw error;
  }
  if (!stack.busName)
    throw new UsageError(
      'this dev stack publishes no events (it runs on existing resources): name their bus with --bus',
    );
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

/** The rule's pattern: smtpq's events, of the --type(s) and the --message when given. */
export function eventPattern(options: Pick<EventsOptions, 'type' | 'message'>): Record<string, unknown> {
  return {
    source: [EVENT_SOURCE],
    ...(options.type?.length ? { 'detail-type': [...new Set(options.type)] } : {}),
    ...(options.message ? { detail: { data: { messageId: [options.message] } } } : {}),
  };
}

async function follow(options: EventsOptions): Promise<number> {
  checkOptions(options);
  const { busName, region, endpoint } = await target(options);
  // Loaded here, not with the CLI: every other command starts without the SQS and EventBridge SDKs.
  const [{ DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient }, { subscribeQueue }, publisher] =
    await Promise.all([
      import('@aws-sdk/client-sqs'),
      import('../../lib/aws/event-bus.ts'),
      import('../../lib/aws/event-publisher.ts'),
    ]);
  const eventbridge = publisher.createEventBridgeClient({ region, endpoint });
  const sqs = new SQSClient({ region, ...(endpoint ? { endpoint } : {}) });
  const name = `smtpq-cli-${randomUUID().slice(0, 8)}`;

  // The signals are caught before anything is created, so a Ctrl-C while subscribing still cleans up.
  let stopping = false;
  const abort = new AbortController();
  const stop = () => {
    if (stopping) {
      // A second Ctrl-C while removing: leave now, and say what may be left.
      console.error(`\nsmtpq: quitting; the rule and the queue ${name} on ${busName} may be left`);
      process.exit(130);
    }
    stopping = true;
    abort.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  let subscription: QueueSubscription | undefined;
  let cleanupFailed = false;
  try {
    try {
      subscription = await subscribeQueue(eventbridge, sqs, {
        busName,
        ruleName: name,
        queueName: name,
        temporary: true,
        pattern: eventPattern(options),
        // A queue left behind (kill -9) keeps nothing for long.
        queueAttributes: { MessageRetentionPeriod: '3600' },
      });
    } catch (error) {
      await removeLeftovers(eventbridge, sqs, busName, name);
      throw error;
    }
    if (!stopping) console.error(`following ${busName} through the rule and queue ${name} (Ctrl-C to stop)`);
    const printed = new RecentIds(REMEMBERED_IDS);
    while (!stopping) {
      let messages: { Body?: string; ReceiptHandle?: string }[];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: subscription.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 20,
          }),
          { abortSignal: abort.signal },
        );
        messages = out.Messages ?? [];
      } catch (error) {
        if (stopping) break;
        throw error;
      }
      const events = messages.map((m) => eventOf(m.Body)).filter((e): e is SmtpqEvent => e !== undefined);
      for (const event of inOrder(events)) {
        if (options.message && event.data?.messageId !== options.message) continue;
        if (options.type?.length && !options.type.includes(event.type)) continue;
        if (!printed.add(event.id)) continue;
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
    if (subscription) {
      const left = await removeSubscription(subscription, eventbridge, sqs, busName, name);
      if (left.length === 0) console.error('stopped; the temporary rule and queue are removed');
      else {
        console.error(`smtpq: could not remove ${left.join(' and ')} named ${name} on ${busName}`);
        cleanupFailed = true;
      }
    }
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    eventbridge.destroy();
    sqs.destroy();
  }
  // What is left on the bus is worth a retry of the removal (by hand, with the names printed).
  return cleanupFailed ? EXIT.tempfail : EXIT.ok;
}

/** Removes the rule and the queue, each on its own (one that fails does not keep the other); what is left. */
async function removeSubscription(
  subscription: QueueSubscription,
  eventbridge: EventBridgeClient,
  sqs: SQSClient,
  busName: string,
  name: string,
): Promise<string[]> {
  try {
    await subscription.remove();
    return [];
  } catch {
    return removeLeftovers(eventbridge, sqs, busName, name);
  }
}

/** Deletes whatever of the subscription exists (after a failed subscribe or remove); returns what is left. */
async function removeLeftovers(
  eventbridge: EventBridgeClient,
  sqs: SQSClient,
  busName: string,
  name: string,
): Promise<string[]> {
  const { RemoveTargetsCommand, DeleteRuleCommand } = await import('@aws-sdk/client-eventbridge');
  const { GetQueueUrlCommand, DeleteQueueCommand } = await import('@aws-sdk/client-sqs');
  const gone = (error: unknown) =>
    ['ResourceNotFoundException', 'QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue'].includes(
      (error as { name?: string }).name ?? '',
    );
  const left: string[] = [];
  try {
    await eventbridge.send(new RemoveTargetsCommand({ Rule: name, EventBusName: busName, Ids: ['queue'] }));
  } catch (error) {
    if (!gone(error)) left.push('the rule');
  }
  try {
    await eventbridge.send(new DeleteRuleCommand({ Name: name, EventBusName: busName }));
  } catch (error) {
    if (!gone(error) && !left.includes('the rule')) left.push('the rule');
  }
  try {
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    await sqs.send(new DeleteQueueCommand({ QueueUrl }));
  } catch (error) {
    if (!gone(error)) left.push('the queue');
  }
  return left;
}

/** The smtpq event in an SQS body (EventBridge's envelope, the event its `detail`); undefined for others. */
function eventOf(body: string | undefined): SmtpqEvent | undefined {
  try {
    const envelope = JSON.parse(body ?? '') as { source?: string; detail?: SmtpqEvent };
    const event = envelope.detail;
    if (envelope.source !== EVENT_SOURCE || typeof event !== 'object' || event === null) return undefined;
    if (typeof event.type !== 'string' || typeof event.data !== 'object' || event.data === null)
      return undefined;
    return event;
  } catch {
    return undefined;
  }
}

/**
 * One receive's events as they happened: SQS does not keep the order, but each message's events carry their
 * ledger sequence (and within one sequence recipients come before the message). Each message's events are
 * put in that order in the places they arrived in; events of different messages keep their arrival order.
 */
export function inOrder(events: readonly SmtpqEvent[]): SmtpqEvent[] {
  const rank = (e: SmtpqEvent) => (String(e.type).startsWith('recipient.') ? 0 : 1);
  const byMessage = new Map<string, number[]>();
  events.forEach((event, index) => {
    const key = String(event.data.messageId);
    byMessage.set(key, [...(byMessage.get(key) ?? []), index]);
  });
  const out = [...events];
  for (const slots of byMessage.values()) {
    const sorted = slots
      .map((index) => events[index]!)
      .sort((a, b) => (a.data.sequence ?? 0) - (b.data.sequence ?? 0) || rank(a) - rank(b));
    slots.forEach((slot, i) => {
      out[slot] = sorted[i]!;
    });
  }
  return out;
}

/** A bounded set: the last `size` ids. add() is false for one already there. */
class RecentIds {
  readonly #ids = new Set<string>();
  constructor(readonly size: number) {}
  add(id: string | undefined): boolean {
    if (id === undefined) return true;
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.size) this.#ids.delete(this.#ids.values().next().value!);
    return true;
  }
}

/** The reply as one line: code, enhanced code, text (whose first line repeats the enhanced code: once). */
function replyText(reply: NonNullable<SmtpqEvent['data']['reply']>): string {
  let text = String(reply.text ?? '')
    .replace(/\s+/g, ' ')
    .trim();
  const enhanced = reply.enhancedCode;
  if (enhanced && (text === enhanced || text.startsWith(`${enhanced} `)))
    text = text.slice(enhanced.length).trim();
  return [reply.code, enhanced, text].filter((part) => part !== undefined && part !== '').join(' ');
}

/**
 * One event as a line: time, type, message, then recipient, the reply (code, enhanced code, text) or the
 * error, the next attempt, the send time. Everything from outside escaped: no raw control character reaches
 * the terminal.
 */
export function line(event: SmtpqEvent): string {
  const d = event.data;
  const extra = [
    d.recipient ?? '',
    d.reply ? replyText(d.reply) : '',
    d.error ? `error: ${d.error}` : '',
    d.nextAttemptAt ? `next ${d.nextAttemptAt}` : '',
    d.sendAt ? `sendAt ${d.sendAt}` : '',
  ].filter(Boolean);
  return [
    safe(event.timestamp),
    safe(event.type).padEnd(22),
    safe(d.messageId),
    ...extra.map((x) => safe(x)),
  ].join('  ');
}

/** API and usage errors as every command reports them; AWS errors by name and message, never a stack. */
function reportEventsError(error: unknown): number {
  if (error instanceof ApiError || error instanceof UsageError) return reportError(error);
  const e = error as { name?: string; message?: string; code?: string; $metadata?: unknown; $fault?: string };
  if (e?.name === 'ResourceNotFoundException') {
    console.error(`smtpq: no such event bus: ${safe(e.message)} (--bus and --region name it)`);
    return EXIT.unavailable;
  }
  if (e?.name === 'CredentialsProviderError') {
    console.error(`smtpq: no AWS credentials: ${safe(e.message)}`);
    return EXIT.unavailable;
  }
  const network = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EAI_AGAIN'].includes(
    e?.code ?? '',
  );
  if (e?.$metadata !== undefined || network) {
    console.error(`smtpq: ${safe(e.name)}: ${safe(e.message)}`);
    return network || e.$fault === 'server' ? EXIT.tempfail : EXIT.unavailable;
  }
  throw error;
}
