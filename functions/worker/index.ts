// Worker Lambda entry (SQS event source with ReportBatchItemFailures). Configuration is validated and the
// AWS clients built once per cold start; an invalid configuration fails the init with a message naming
// the variable, before any record is taken.
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { loadWorkerConfig } from '../../lib/config.ts';
import { createLogger, createMetrics, createWorkerDeps } from './deps.ts';
import { createWorker, type WorkerHandler } from './worker.ts';

const logger = createLogger();

function init(): WorkerHandler {
  try {
    return createWorker(createWorkerDeps(loadWorkerConfig(), { logger, metrics: createMetrics() }));
  } catch (error) {
    logger.critical('worker configuration invalid', { error });
    throw error;
  }
}

const run = init();

export function handler(event: SQSEvent, context?: Context): Promise<SQSBatchResponse> {
  return run(event, context);
}
