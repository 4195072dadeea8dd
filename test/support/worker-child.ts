// A real worker process for the worker-killed case of test/e2e/pipeline-faults.test.ts: the worker handler
// built as `npm run dev` builds it (functions/worker/worker.ts + deps.ts, configuration from the environment:
// the AWS resources, SMTP_HOST/SMTP_PORT/SMTP_TLS), behind the local SQS event source (scripts/local/
// sqs-poller.ts) on QUEUE_URL. One invocation at a time (WORKER_CONCURRENCY, default 1), each with a Lambda
// context of WORKER_FUNCTION_TIMEOUT_MS (the worker's leases and SMTP deadline follow from it).
//
// stdout, one line each: `READY` once polling, `BATCH {json}` after every invocation (records, deleted,
// retained). SIGTERM stops it cleanly (the batch in progress finishes); SIGKILL is what the test sends.
import { Logger } from '@aws-lambda-powertools/logger';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker } from '../../functions/worker/worker.ts';
import { createAwsClients } from '../../lib/aws/clients.ts';
import { loadWorkerConfig } from '../../lib/config.ts';
import { startSqsPoller } from '../../scripts/local/sqs-poller.ts';

const config = loadWorkerConfig(process.env);
const clients = createAwsClients(config.aws);
const worker = createWorker(
  createWorkerDeps(config, { clients, logger: new Logger({ serviceName: 'smtpq-worker-child' }) }),
);
const poller = await startSqsPoller({
  sqs: clients.sqs,
  queueUrl: config.queueUrl,
  region: config.aws.region,
  batchSize: 100,
  batchingWindowSeconds: 1,
  waitTimeSeconds: 1,
  concurrency: Number(process.env.WORKER_CONCURRENCY ?? 1),
  functionTimeoutMs: Number(process.env.WORKER_FUNCTION_TIMEOUT_MS ?? 300_000),
  handler: (event, context) => worker(event, context),
  onBatch: (report) =>
    process.stdout.write(
      `BATCH ${JSON.stringify({
        records: report.event.Records.length,
        deleted: report.deleted.length,
        retained: report.retained.length,
        wholeBatchFailed: report.wholeBatchFailed,
        ms: report.durationMs,
      })}\n`,
    ),
  onError: (error) => process.stderr.write(`[worker-child] ${String(error)}\n`),
});
process.stdout.write('READY\n');
process.once('SIGTERM', () => {
  poller.stop().then(() => process.exit(0));
});
