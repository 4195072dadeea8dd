// The events function's core: a batch of the ledger's stream records (one shard, in commit order) → the
// events of each committed change (lib/delivery/events.ts) → EventBridge, in order. On a failure it reports
// the first stream record whose events may not all be on the bus: Lambda retries the batch from that record
// on (ReportBatchItemFailures on a stream checkpoints before it), so a message's events stay in order and
// any repeat carries the same event ids.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { ledgerChangeOf } from '../../lib/aws/ledger-stream.ts';
import { eventsOf, type SmtpqEvent } from '../../lib/delivery/events.ts';

export interface EventsDeps {
  /** Publishes in order; throws an error with `firstFailed` (the index of the first event not taken). */
  publish(events: readonly SmtpqEvent[]): Promise<void>;
  logger: Logger;
  /** Each event published (the dev inbox's timeline). */
  onPublished?(events: readonly SmtpqEvent[]): void;
}

export type EventsHandler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>;

export function createEventsHandler(deps: EventsDeps): EventsHandler {
  return async (event) => {
    const events: SmtpqEvent[] = [];
    /** events[i] came from stream record recordOf[i]. */
    const recordOf: number[] = [];
    let unreadable: number | undefined;
    for (const [index, record] of event.Records.entries()) {
      try {
        const change = ledgerChangeOf(record);
        if (!change) continue;
        for (const e of eventsOf(change)) {
          events.push(e);
          recordOf.push(index);
        }
      } catch (error) {
        // Not skipped: reported, so the stream retries it and, after its retries, its on-failure destination
        // keeps it (with the records after it retried in order).
        deps.logger.error('ledger stream record not readable', {
          sequenceNumber: record.dynamodb?.SequenceNumber,
          error,
        });
        unreadable = index;
        break;
      }
    }
    try {
      await deps.publish(events);
      deps.onPublished?.(events);
    } catch (error) {
      const firstFailed = (error as { firstFailed?: number }).firstFailed ?? 0;
      deps.onPublished?.(events.slice(0, firstFailed));
      deps.logger.error('events not published; the stream retries from the first record not done', {
        published: firstFailed,
        of: events.length,
        error,
      });
      return failedFrom(event, recordOf[firstFailed] ?? 0);
    }
    deps.logger.info('events published', { records: event.Records.length, events: events.length });
    return unreadable === undefined ? { batchItemFailures: [] } : failedFrom(event, unreadable);
  };
}

function failedFrom(event: DynamoDBStreamEvent, index: number): DynamoDBBatchResponse {
  const sequence = event.Records[index]?.dynamodb?.SequenceNumber;
  return { batchItemFailures: sequence ? [{ itemIdentifier: sequence }] : [] };
}
