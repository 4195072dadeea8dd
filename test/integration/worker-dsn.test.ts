// DSN and REQUIRETLS through the API and the worker (moto + smtp-server): a relay offering both receives RET/
// ENVID/REQUIRETLS on MAIL and NOTIFY/ORCPT on RCPT; one without DSN gets the message without them (the
// transcript says so); one without REQUIRETLS gets nothing and the recipients fail with the reason.
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker, type WorkerHandler } from '../../functions/worker/worker.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { createSqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { apiEvent } from './api-harness.ts';

let resources: TestResources;
let api: ReturnType<typeof createApiHandler>;
const servers: TestSmtpServer[] = [];

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'CRITICAL';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  resources = await createTestResources(inject('motoEndpoint'), { visibilityTimeoutSeconds: 1 });
  api = createApiHandler(createAwsDeps(loadApiConfig(resources.env), new Logger({ logLevel: 'SILENT' })));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function relay(options: {
  dsn?: boolean;
  requireTls?: boolean;
}): Promise<{ smtp: TestSmtpServer; worker: WorkerHandler }> {
  const smtp = await startTestSmtpServer(options);
  servers.push(smtp);
  const config = loadWorkerConfig({
    ...resources.env,
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_TLS: 'starttls',
    SMTP_CA_PEM: smtp.caPem,
    SMTP_EHLO_NAME: 'worker.smtpq.test',
  });
  return { smtp, worker: createWorker(createWorkerDeps(config, { clients: resources.clients })) };
}

const ledger = () => new DynamoLedger(resources.clients.documents, resources.table, 30);
const record = async (id: string): Promise<StatusRecord> => (await ledger().get(id))!.value;

async function send(worker: WorkerHandler, request: object): Promise<StatusRecord> {
  const response = await api(
    apiEvent({
      method: 'POST',
      path: '/v1/messages',
      body: { from: 'a@smtpq.test', subject: 's', text: 't', ...request },
    }),
  );
  expect(response.statusCode, response.body).toBe(202);
  const id = JSON.parse(response.body!).id as string;
  const poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: worker,
  });
  for (
    let round = 0;
    round < 10 && ['queued', 'sending', 'deferred'].includes((await record(id)).state);
    round++
  )
    await poller.pollOnce();
  return record(id);
}

const dsn = { notify: ['failure', 'delay'], ret: 'hdrs', envid: 'campaign 7' };

describe('DSN and REQUIRETLS through the worker', () => {
  it('a relay offering both receives them on MAIL and RCPT', async () => {
    const { smtp, worker } = await relay({ dsn: true, requireTls: true });
    const r = await send(worker, { to: ['b@example.org'], dsn, requireTls: true });
    expect(r.state).toBe('sent');
    const [received] = smtp.messages;
    expect(received!.secure).toBe(true);
    // smtp-server decodes the xtext (ENVID=campaign+207 on the wire).
    expect(received!.mailParams).toMatchObject({ RET: 'HDRS', ENVID: 'campaign 7', REQUIRETLS: true });
    expect(received!.rcptParams[0]).toMatchObject({ NOTIFY: 'FAILURE,DELAY', ORCPT: 'rfc822;b@example.org' });
  });

  it('a relay without DSN gets the message without the parameters, and the transcript says so', async () => {
    const { smtp, worker } = await relay({});
    const r = await send(worker, { to: ['c@example.org'], dsn });
    expect(r.state).toBe('sent');
    expect(smtp.messages[0]!.mailParams.RET).toBeUndefined();
    expect(smtp.messages[0]!.rcptParams[0]!.NOTIFY).toBeUndefined();
    const store = new S3TranscriptStore(resources.clients.s3, resources.bucket);
    const text = (await Promise.all(r.transcripts.map((t) => store.part(t)))).join('');
    expect(text).toMatch(/does not offer DSN/);
  });

  it('a relay without REQUIRETLS gets nothing: the recipients fail with the reason', async () => {
    const { smtp, worker } = await relay({ dsn: true });
    const r = await send(worker, { to: ['d@example.org', 'e@example.org'], requireTls: true });
    expect(r.state).toBe('failed');
    for (const recipient of r.recipients) {
      expect(recipient.state).toBe('failed');
      expect(recipient.error).toMatch(
        /SMTP_REQUIRETLS_UNSUPPORTED: REQUIRETLS requested but the server does not offer REQUIRETLS/,
      );
    }
    expect(smtp.messages).toHaveLength(0);
  });

  it('refuses a bad dsn with a 400 naming the field', async () => {
    const response = await api(
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        body: {
          from: 'a@smtpq.test',
          to: 'b@example.org',
          text: 't',
          dsn: { notify: ['never', 'success'], ret: 'all' },
          requireTls: 'yes',
        },
      }),
    );
    expect(response.statusCode).toBe(400);
    const paths = (JSON.parse(response.body!) as { issues: { path: string }[] }).issues
      .map((i) => i.path)
      .sort();
    expect(paths).toEqual(['dsn.notify', 'dsn.ret', 'requireTls']);
  });
});
