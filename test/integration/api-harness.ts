// Helpers for the API handler tests: API Gateway v2 events, the handler loaded against moto resources (and
// variants of it built from the same adapters with one of them pointed elsewhere), the ledger as the tests
// read it, and a queue drain that returns what was enqueued.
import { Logger } from '@aws-lambda-powertools/logger';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { beforeAll, inject } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { newMessageId } from '../../functions/api/ids.ts';
import { DynamoIdempotencyStore } from '../../lib/aws/idempotency-store.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { idempotencyItemKey } from '../../lib/aws/ledger-table.ts';
import { type ApiConfig, loadApiConfig } from '../../lib/config.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

export { apiEvent, type EventOptions } from '../support/api-event.ts';

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
  /** The configuration the handler runs with (its environment read by lib/config). */
  config: ApiConfig;
  /** The ledger the handler writes, read directly. */
  ledger: DynamoLedger;
  /** The idempotency keys of the same table, read and written directly. */
  idempotency: DynamoIdempotencyStore;
}

/** Registers a beforeAll that fills in the returned object: read its fields in hooks and tests, not at load. */
export function apiOnFreshResources(env: Record<string, string> = {}): ApiOnMoto {
  const api = {} as ApiOnMoto;
  beforeAll(async () => {
    api.resources = await createTestResources(inject('motoEndpoint'));
    api.handler = await loadHandler(api.resources, env);
    api.config = loadApiConfig({ ...api.resources.env, ...env });
    const { documents } = api.resources.clients;
    api.ledger = new DynamoLedger(documents, api.resources.table, api.config.aws.retentionDays);
    api.idempotency = new DynamoIdempotencyStore(documents, api.resources.table);
  });
  return api;
}

/** The Lambda handler or the handler core (createApiHandler): either answers an API Gateway event. */
export type HandlerCore = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

/**
 * Another handler on the same real adapters: `config` changes the configuration (a queue or a table that
 * does not exist), `adjust` swaps or wraps single dependencies. Logs nothing.
 */
export function apiVariant(
  api: ApiOnMoto,
  options: { config?: (config: ApiConfig) => ApiConfig; adjust?: (deps: ApiDeps) => void } = {},
): HandlerCore {
  const config = options.config ? options.config(api.config) : api.config;
  const deps = createAwsDeps(config, new Logger({ serviceName: 'smtpq-api-test', logLevel: 'SILENT' }));
  options.adjust?.(deps);
  return createApiHandler(deps);
}

/** The configuration with a queue that does not exist: SQS (moto) refuses every send for real. */
export const missingQueue = (config: ApiConfig): ApiConfig => ({
  ...config,
  queueUrl: `${config.queueUrl}-missing`,
});

/** The configuration with a ledger table that does not exist: every DynamoDB call fails for real. */
export const missingTable = (config: ApiConfig): ApiConfig => ({
  ...config,
  aws: { ...config.aws, table: `${config.aws.table}-missing` },
});

/** Status records on a table that does not exist (ResourceNotFoundException); idempotency keys still work. */
export function ledgerOnMissingTable(api: ApiOnMoto): (deps: ApiDeps) => void {
  return (deps) => {
    deps.status = new DynamoLedger(api.resources.clients.documents, `${api.resources.table}-missing`, 30);
  };
}

/** Every message id in the ledger table (a Scan: tests only; the code itself never scans). */
export async function ledgerIds(resources: TestResources): Promise<string[]> {
  const ids: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await resources.clients.documents.send(
      new ScanCommand({
        TableName: resources.table,
        ProjectionExpression: 'pk',
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      const pk = String(item.pk);
      if (pk.startsWith('msg#')) ids.push(pk.slice(4));
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return ids;
}

/** The claim item of an Idempotency-Key as the table holds it, or undefined when the key is free. */
export async function claimItem(
  resources: TestResources,
  clientKey: string,
): Promise<Record<string, unknown> | undefined> {
  const { Item } = await resources.clients.documents.send(
    new GetCommand({
      TableName: resources.table,
      Key: { pk: idempotencyItemKey(clientKey) },
      ConsistentRead: true,
    }),
  );
  return Item;
}

/** Makes `deps` hand out fresh message ids and note each in `handed`: the ids of requests that answer none. */
export function recordIds(handed: string[]): (deps: ApiDeps) => void {
  return (deps) => {
    deps.newId = () => {
      const id = newMessageId();
      handed.push(id);
      return id;
    };
  };
}

/** Makes `deps` fail every release of an Idempotency-Key the way DynamoDB does in an outage; claims still work. */
export function refuseKeyReleases(deps: ApiDeps): void {
  const store = deps.idempotency;
  deps.idempotency = {
    claim: (...args) => store.claim(...args),
    markEnqueued: (...args) => store.markEnqueued(...args),
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
