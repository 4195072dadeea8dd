// Events Lambda entry (the ledger's DynamoDB stream as event source, ReportBatchItemFailures,
// ParallelizationFactor 1). Configuration is read once per cold start; EVENT_BUS_NAME names the bus.
import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createEventBridgeClient, EventBridgePublisher } from '../../lib/aws/event-publisher.ts';
import { loadEventsConfig } from '../../lib/config.ts';
import { createEventsHandler } from './handler.ts';

const logger = new Logger({ serviceName: 'smtpq-events' });

function init() {
  try {
    const config = loadEventsConfig();
    const publisher = new EventBridgePublisher(createEventBridgeClient(config.aws), config.busName);
    return createEventsHandler({ publish: (events) => publisher.publish(events), logger });
  } catch (error) {
    logger.critical('events configuration invalid', { error });
    throw error;
  }
}

const run = init();

export function handler(event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> {
  return run(event);
}
