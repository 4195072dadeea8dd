// The deployable bundles (npm run build, the same esbuild settings SAM uses) run as Lambda would run them:
// each invocation in a fresh `node` process that imports dist/<fn>/index.mjs as ESM. Submit through the API
// bundle against moto, deliver with the worker bundle to an in-process SMTP server, read status and
// transcript back. This catches what only a bundle can break (CommonJS require in ESM, missing files).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyStructuredResultV2, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
// @ts-expect-error: scripts/build.mjs is plain JavaScript without type declarations.
import { buildBundles } from '../../scripts/build.mjs';
import { createSqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { apiEvent } from './api-harness.ts';

let resources: TestResources;
let smtp: TestSmtpServer;
let outdir: string;
let env: Record<string, string>;

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'smtpq-bundles-'));
  await buildBundles({ outdir });
  resources = await createTestResources(inject('motoEndpoint'));
  smtp = await startTestSmtpServer({ tls: 'none' });
  env = {
    PATH: process.env.PATH ?? '',
    ...resources.env,
    MESSAGE_ID_DOMAIN: 'bundle.test',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_TLS: 'none',
    SMTP_REQUIRE_TLS: 'false',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    POWERTOOLS_METRICS_DISABLED: 'true',
  };
});

afterAll(async () => {
  await smtp?.close();
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

const resultMarker = 'SMTPQ-RESULT ';

/** One cold invocation: a new node process imports the bundle and calls its handler with `event`. */
function invoke<T>(fn: 'api' | 'worker', event: unknown): Promise<T> {
  const script = `
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const { handler } = await import(${JSON.stringify(`file://${join(outdir, fn, 'index.mjs')}`)});
    const context = { awsRequestId: 'bundle-test', functionName: 'smtpq-${fn}', getRemainingTimeInMillis: () => 60000 };
    const result = await handler(JSON.parse(Buffer.concat(chunks).toString()), context);
    process.stdout.write('\\n${resultMarker}' + JSON.stringify(result ?? null) + '\\n');`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--enable-source-maps', '--input-type=module', '-e', script], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith(resultMarker));
      if (code !== 0 || !line) reject(new Error(`${fn} bundle exited with ${code}:\n${stderr}\n${stdout}`));
      else resolve(JSON.parse(line.slice(resultMarker.length)) as T);
    });
    child.stdin.end(JSON.stringify(event));
  });
}

const callApi = (options: Parameters<typeof apiEvent>[0]) =>
  invoke<APIGatewayProxyStructuredResultV2>('api', apiEvent(options));

describe('the built bundles', () => {
  it('submit, deliver and report a message end to end', async () => {
    const submitted = await callApi({
      method: 'POST',
      path: '/v1/messages',
      body: { from: 'alice@example.com', to: ['bob@example.org'], subject: 'From the bundle', text: 'Hello' },
    });
    expect(submitted.statusCode).toBe(202);
    const { id } = JSON.parse(submitted.body!) as { id: string };

    const poller = createSqsPoller({
      sqs: resources.clients.sqs,
      queueUrl: resources.queueUrl,
      waitTimeSeconds: 1,
      handler: (event: SQSEvent) => invoke<SQSBatchResponse>('worker', event),
    });
    let handled = 0;
    for (let round = 0; round < 5 && handled === 0; round++) handled = await poller.pollOnce();
    expect(handled).toBe(1);

    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.rcptTo).toEqual(['bob@example.org']);
    const mail = await simpleParser(smtp.messages[0]!.raw);
    expect(mail.subject).toBe('From the bundle');
    expect(mail.text?.trim()).toBe('Hello');

    const status = await callApi({ path: `/v1/messages/${id}` });
    expect(status.statusCode).toBe(200);
    expect(JSON.parse(status.body!)).toMatchObject({ id, state: 'sent' });

    const transcript = await callApi({ path: `/v1/messages/${id}/transcript` });
    expect(transcript.statusCode).toBe(200);
    expect(transcript.body).toMatch(/C: RCPT TO:<bob@example\.org>/);
  });

  it('fails the cold start with the variable named when the configuration is incomplete', async () => {
    const { BUCKET_NAME: _dropped, ...incomplete } = env;
    const saved = env;
    env = incomplete;
    try {
      await expect(invoke('api', apiEvent({ path: '/v1/messages/x' }))).rejects.toThrow(/BUCKET_NAME/);
    } finally {
      env = saved;
    }
  });
});
