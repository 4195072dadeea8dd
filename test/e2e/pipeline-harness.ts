// What the pipeline tests (pipeline-*.test.ts) share: the two Lambda entry points as they call them, the
// API calls they make through the API handler, and the local event source that feeds the worker.
import type { SQSEvent } from 'aws-lambda';
import { expect } from 'vitest';
import type { StatusView } from '../../functions/api/status.ts';
import { type BatchReport, createSqsPoller, type SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { apiEvent } from '../integration/api-harness.ts';
import type { TestResources } from '../support/moto.ts';

export type ApiEntry = (
  event: ReturnType<typeof apiEvent>,
) => Promise<{ statusCode?: number; body?: string; headers?: Record<string, string | number | boolean> }>;
export type WorkerEntry = (event: SQSEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;

/** POST /v1/messages with `request`; expects 202 and returns the message id. */
export async function submitThrough(api: ApiEntry, request: object): Promise<string> {
  const response = await api(apiEvent({ method: 'POST', path: '/v1/messages', body: request }));
  expect(response.statusCode, response.body).toBe(202);
  return (JSON.parse(response.body!) as { id: string }).id;
}

/** GET /v1/messages/{id}; expects 200 and returns the status view. */
export async function statusThrough(api: ApiEntry, id: string): Promise<StatusView> {
  const response = await api(apiEvent({ path: `/v1/messages/${id}` }));
  expect(response.statusCode).toBe(200);
  return JSON.parse(response.body!);
}

/** The local event source on the main queue: hands each batch to `worker` and adds its report to `reports`. */
export function eventSourceFor(
  resources: TestResources,
  worker: WorkerEntry,
  reports: BatchReport[],
): SqsPoller {
  return createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: (event) => worker(event),
    onBatch: (report) => reports.push(report),
  });
}
