// Helpers for the API handler tests: API Gateway v2 events, the handler loaded against moto resources,
// and a queue drain that returns what was enqueued.
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { beforeAll, inject } from 'vitest';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

export interface EventOptions {
  method?: string;
  path: string;
  body?: unknown;
  /** Raw body text; wins over `body`. */
  rawBody?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  base64?: boolean;
}

/** A payload format 2.0 event as API Gateway sends it (header names lower-cased). */
export function apiEvent(options: EventOptions): APIGatewayProxyEventV2 {
  const method = options.method ?? 'GET';
  const text = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: options.path,
    rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
    headers,
    ...(options.query ? { queryStringParameters: options.query } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path: options.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    isBase64Encoded: options.base64 ?? false,
    ...(text === undefined ? {} : { body: options.base64 ? Buffer.from(text).toString('base64') : text }),
  };
}

export type ApiHandler = typeof import('../../functions/api/index.ts').handler;

/** Points the environment at the test resources, then loads the handler (its cold start reads them). */
export async function loadHandler(
  resources: TestResources,
  env: Record<string, string> = {},
): Promise<ApiHandler> {
  Object.assign(process.env, resources.env, { POWERTOOLS_LOG_LEVEL: 'ERROR' }, env);
  return (await import('../../functions/api/index.ts')).handler;
}

/** This test file's own resources on the shared moto server, and the API handler loaded against them. */
export interface ApiOnMoto {
  resources: TestResources;
  handler: ApiHandler;
}

/** Registers a beforeAll that fills in the returned object: read its fields in hooks and tests, not at load. */
export function apiOnFreshResources(env: Record<string, string> = {}): ApiOnMoto {
  const api = {} as ApiOnMoto;
  beforeAll(async () => {
    api.resources = await createTestResources(inject('motoEndpoint'));
    api.handler = await loadHandler(api.resources, env);
  });
  return api;
}

/** Makes `deps` fail every release of an Idempotency-Key the way S3 does in an outage; claims still work. */
export function refuseKeyReleases(deps: ApiDeps): void {
  const store = deps.idempotency;
  deps.idempotency = {
    claim: (...args) => store.claim(...args),
    release: async () => {
      throw Object.assign(new Error('Service unavailable'), { name: 'ServiceUnavailable' });
    },
  };
}

/** Receives until the queue answers empty, deleting what it got; returns the parsed bodies. */
export async function drainQueue(
  resources: TestResources,
  queueUrl = resources.queueUrl,
): Promise<unknown[]> {
  const bodies: unknown[] = [];
  for (;;) {
    const { Messages = [] } = await resources.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    if (Messages.length === 0) return bodies;
    for (const message of Messages) {
      bodies.push(JSON.parse(message.Body!));
      await resources.clients.sqs.send(
        new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }),
      );
    }
  }
}

export function parseBody(response: { body?: string }): Record<string, unknown> {
  return JSON.parse(response.body ?? '') as Record<string, unknown>;
}

export const validRequest = {
  from: 'Alice <alice@example.com>',
  to: ['bob@example.org'],
  cc: ['carol@example.org'],
  bcc: ['dave@example.org'],
  subject: 'Hello',
  text: 'Hi Bob',
};
