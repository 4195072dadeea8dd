// The API process killed between its two steps (SIGKILL, a real process): SQS has taken the message, the
// status record was never written. The worker leaves the record to the API during the grace
// (RECORD_WRITE_GRACE_SECONDS, 1 s here), then writes it from the queue message and delivers: once, with
// a status the API then answers.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker } from '../../functions/worker/worker.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import type { BatchReport, SqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { type ApiEntry, eventSourceFor, statusThrough } from './pipeline-harness.ts';

const child = fileURLToPath(new URL('../support/api-killed-child.ts', import.meta.url));
let resources: TestResources;
let smtp: TestSmtpServer;
let api: ApiEntry;
let poller: SqsPoller;
const reports: BatchReport[] = [];
const running: ChildProcess[] = [];

beforeAll(async () => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  resources = await createTestResources(inject('motoEndpoint'));
  smtp = await startTestSmtpServer({ tls: 'none' });
  const quiet = new Logger({ logLevel: 'CRITICAL' });
  api = createApiHandler(createAwsDeps(loadApiConfig(resources.env), quiet));
  const worker = createWorker(
    createWorkerDeps(
      loadWorkerConfig({
        ...resources.env,
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_TLS: 'none',
        RECORD_WRITE_GRACE_SECONDS: '1',
      }),
      { clients: resources.clients, logger: quiet },
    ),
  );
  poller = eventSourceFor(resources, (event: SQSEvent) => worker(event), reports);
});

afterAll(async () => {
  await poller?.stop();
  for (const process of running) process.kill('SIGKILL');
  await smtp?.close();
});

/** Runs the POST in its own process and SIGKILLs it once SQS has taken the message(s). */
async function killedAfterEnqueue(mode: 'single' | 'batch', body: object): Promise<void> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, mode, JSON.stringify(body)], {
    env: { ...process.env, ...resources.env, POWERTOOLS_LOG_LEVEL: 'CRITICAL' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.push(proc);
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.once('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: proc.stdout! })) {
    if (line === 'ENQUEUED') break;
    if (line === 'ANSWERED') throw new Error('the API answered: it was not stopped between its steps');
  }
  proc.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

/** The ids the queue holds for messages to `rcpt`, from the bodies the worker was handed. */
function idsHandedFor(rcpt: string): string[] {
  const ids = new Set<string>();
  for (const report of reports)
    for (const record of report.event.Records)
      if (record.body.includes(rcpt)) ids.add((JSON.parse(record.body) as { id: string }).id);
  return [...ids];
}

/** Status records in the ledger (msg# items). */
async function recordCount(): Promise<number> {
  const { Items = [] } = await resources.clients.documents.send(
    new ScanCommand({ TableName: resources.table, ProjectionExpression: 'pk' }),
  );
  return Items.filter((item) => String(item.pk).startsWith('msg#')).length;
}

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('the API killed between the enqueue and the ledger write', () => {
  it('POST /v1/messages: the message is delivered exactly once and its status is recorded', async () => {
    const rcpt = 'killed-single@example.org';
    await killedAfterEnqueue('single', {
      from: 'alice@example.com',
      to: [rcpt],
      subject: 'killed',
      text: 'x',
    });

    poller.start();
    try {
      await until(async () => {
        const [id] = idsHandedFor(rcpt);
        return id !== undefined && (await statusThrough(api, id).catch(() => undefined))?.state === 'sent';
      }, 'the killed submit to be delivered');
    } finally {
      await poller.stop();
    }

    const [id] = idsHandedFor(rcpt);
    expect(await statusThrough(api, id!)).toMatchObject({ state: 'sent', attempts: 1, subject: 'killed' });
    expect(smtp.messages.filter((m) => m.rcptTo.includes(rcpt))).toHaveLength(1);
  });

  it('POST /v1/messages/batch: every message is delivered exactly once and recorded', async () => {
    const rcpts = Array.from({ length: 12 }, (_, n) => `killed-batch-${n}@example.org`);
    const messages = rcpts.map((rcpt) => ({ from: 'alice@example.com', to: [rcpt], text: rcpt }));
    const before = await recordCount();
    await killedAfterEnqueue('batch', { messages });
    expect(await recordCount()).toBe(before);

    poller.start();
    try {
      await until(async () => {
        const ids = rcpts.flatMap(idsHandedFor);
        if (ids.length < rcpts.length) return false;
        const states = await Promise.all(ids.map((id) => statusThrough(api, id).catch(() => undefined)));
        return states.every((s) => s?.state === 'sent');
      }, 'the killed batch to be delivered');
    } finally {
      await poller.stop();
    }

    for (const rcpt of rcpts) expect(smtp.messages.filter((m) => m.rcptTo.includes(rcpt))).toHaveLength(1);
    for (const id of rcpts.flatMap(idsHandedFor))
      expect(await statusThrough(api, id)).toMatchObject({ state: 'sent', attempts: 1 });
  });
});
