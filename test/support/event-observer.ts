// An observer of the event bus for tests: a rule on the bus with an SQS queue as its target (as a user's own
// subscriber would be), read until the expected events are there.
import { randomUUID } from 'node:crypto';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { subscribeQueue } from '../../lib/aws/event-bus.ts';
import type { SmtpqEvent } from '../../lib/delivery/events.ts';

export interface EventObserver {
  /** Every event received so far, in the order the queue gave them. */
  events: SmtpqEvent[];
  /** Reads until `done(events)` holds, or fails after `timeoutMs`. */
  until(done: (events: SmtpqEvent[]) => boolean, timeoutMs?: number): Promise<SmtpqEvent[]>;
  /** Reads what is on the queue now (a short poll of a second). */
  poll(): Promise<SmtpqEvent[]>;
  remove(): Promise<void>;
}

export async function observeBus(
  eventbridge: EventBridgeClient,
  sqs: SQSClient,
  busName: string,
): Promise<EventObserver> {
  const name = `observer-${randomUUID().slice(0, 8)}`;
  const subscription = await subscribeQueue(eventbridge, sqs, {
    busName,
    ruleName: name,
    queueName: name,
    temporary: true,
  });
  const events: SmtpqEvent[] = [];
  const poll = async () => {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: subscription.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );
    const messages = out.Messages ?? [];
    for (const m of messages) {
      const envelope = JSON.parse(m.Body!) as { source: string; 'detail-type': string; detail: SmtpqEvent };
      if (envelope.source !== 'smtpq' || envelope['detail-type'] !== envelope.detail.type)
        throw new Error(`not an smtpq event envelope: ${m.Body}`);
      events.push(envelope.detail);
    }
    if (messages.length > 0)
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: subscription.queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    return events;
  };
  return {
    events,
    poll,
    async until(done, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done(events)) {
        if (Date.now() > deadline)
          throw new Error(
            `events so far: ${events.map((e) => `${e.type} ${e.data.recipient ?? ''}`).join(', ')}`,
          );
        await poll();
      }
      return events;
    },
    remove: () => subscription.remove(),
  };
}
