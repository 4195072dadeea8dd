// The event bus's plumbing outside the template: the bus itself and an SQS queue subscribed to it by a rule.
// `npm run dev` builds its webhook queue with it (the template declares the same in infra/template.yaml),
// `smtpq events --follow` a temporary queue of its own, and the tests their observer.
import {
  CreateEventBusCommand,
  DeleteRuleCommand,
  DescribeEventBusCommand,
  type EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  SetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { EVENT_SOURCE } from './event-publisher.ts';

/** Creates the bus when it does not exist; returns its ARN. */
export async function ensureEventBus(events: EventBridgeClient, name: string): Promise<string> {
  try {
    return (await events.send(new DescribeEventBusCommand({ Name: name }))).Arn!;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
  }
  try {
    return (await events.send(new CreateEventBusCommand({ Name: name }))).EventBusArn!;
  } catch (error) {
    // Created by a concurrent starter in between.
    if ((error as { name?: string }).name !== 'ResourceAlreadyExistsException') throw error;
    return (await events.send(new DescribeEventBusCommand({ Name: name }))).Arn!;
  }
}

export interface QueueSubscription {
  queueUrl: string;
  queueArn: string;
  ruleArn: string;
  /** Deletes the rule (its target first) and, if this created it for the subscription, the queue. */
  remove(): Promise<void>;
}

export interface SubscribeOptions {
  busName: string;
  ruleName: string;
  /** The queue to deliver to: created when missing (CreateQueue returns an existing one as it is). */
  queueName: string;
  /** SQS attributes of the queue (retention, redrive, visibility). */
  queueAttributes?: Record<string, string>;
  /** Default: every smtpq event. */
  pattern?: Record<string, unknown>;
  /** remove() deletes the queue too (a temporary subscription). */
  temporary?: boolean;
}

/** A rule on the bus that sends the matching events to an SQS queue, with the queue policy it needs. */
export async function subscribeQueue(
  events: EventBridgeClient,
  sqs: SQSClient,
  options: SubscribeOptions,
): Promise<QueueSubscription> {
  const queueUrl = (
    await sqs.send(
      new CreateQueueCommand({ QueueName: options.queueName, Attributes: options.queueAttributes }),
    )
  ).QueueUrl!;
  const queueArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes!.QueueArn!;
  const { RuleArn: ruleArn } = await events.send(
    new PutRuleCommand({
      Name: options.ruleName,
      EventBusName: options.busName,
      EventPattern: JSON.stringify(options.pattern ?? { source: [EVENT_SOURCE] }),
      State: 'ENABLED',
    }),
  );
  // Only this rule may send to the queue (real AWS checks it; emulators may not).
  const policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: queueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': ruleArn } },
      },
    ],
  };
  await sqs.send(
    new SetQueueAttributesCommand({
      QueueUrl: queueUrl,
      Attributes: { ...options.queueAttributes, Policy: JSON.stringify(policy) },
    }),
  );
  await events.send(
    new PutTargetsCommand({
      Rule: options.ruleName,
      EventBusName: options.busName,
      Targets: [{ Id: 'queue', Arn: queueArn }],
    }),
  );
  return {
    queueUrl,
    queueArn,
    ruleArn: ruleArn!,
    async remove() {
      await events.send(
        new RemoveTargetsCommand({ Rule: options.ruleName, EventBusName: options.busName, Ids: ['queue'] }),
      );
      await events.send(new DeleteRuleCommand({ Name: options.ruleName, EventBusName: options.busName }));
      if (options.temporary) await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    },
  };
}
