// Publishes smtpq events to the stack's EventBridge bus: `source: "smtpq"`, `detail-type` = the event type,
// `detail` = the event ({ id, type, timestamp, data }). Built apart from createAwsClients so that only the
// events function bundles the EventBridge client.
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { AwsConfig } from '../config.ts';
import type { SmtpqEvent } from '../delivery/events.ts';

export const EVENT_SOURCE = 'smtpq';
/** PutEvents takes at most 10 entries per call. */
const PUT_EVENTS_LIMIT = 10;

export function createEventBridgeClient(aws: Pick<AwsConfig, 'region' | 'endpoint'>): EventBridgeClient {
  return new EventBridgeClient({ region: aws.region, ...(aws.endpoint ? { endpoint: aws.endpoint } : {}) });
}

/** Events that EventBridge did not take, from the first one on (the ones before it are on the bus). */
export class PublishError extends Error {
  readonly code = 'PUBLISH_FAILED';
  constructor(
    message: string,
    /** Index (in the published list) of the first event not taken. */
    readonly firstFailed: number,
  ) {
    super(message);
  }
}

export class EventBridgePublisher {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly busName: string,
  ) {}

  /**
   * Publishes in order, one call of up to 10 after the other (a message's events are published in the order
   * of its changes). Throws PublishError at the first call with a failed entry, naming the first event that
   * may not be on the bus; everything before it is.
   */
  async publish(events: readonly SmtpqEvent[]): Promise<void> {
    for (let start = 0; start < events.length; start += PUT_EVENTS_LIMIT) {
      const chunk = events.slice(start, start + PUT_EVENTS_LIMIT);
      let out: { FailedEntryCount?: number; Entries?: { ErrorCode?: string; ErrorMessage?: string }[] };
      try {
        out = await this.client.send(
          new PutEventsCommand({
            Entries: chunk.map((event) => ({
              EventBusName: this.busName,
              Source: EVENT_SOURCE,
              DetailType: event.type,
              Detail: JSON.stringify(event),
              Time: new Date(event.timestamp),
              Resources: [],
            })),
          }),
        );
      } catch (error) {
        throw new PublishError(`PutEvents failed: ${(error as Error).message}`, start);
      }
      if ((out.FailedEntryCount ?? 0) === 0) continue;
      const first = (out.Entries ?? []).findIndex((e) => e.ErrorCode !== undefined);
      const entry = out.Entries?.[first];
      throw new PublishError(
        `EventBridge refused ${out.FailedEntryCount} of ${chunk.length} events (${entry?.ErrorCode}: ${entry?.ErrorMessage})`,
        start + Math.max(0, first),
      );
    }
  }
}
