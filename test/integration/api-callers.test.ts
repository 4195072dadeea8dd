// Who may send as whom and read what, through the API handler against moto: ALLOWED_FROM_DOMAINS, the IAM
// caller recorded on each message and on each log line, callers separated (another's message is a 404, its
// Idempotency-Key another key), READ_ALL_PRINCIPALS.
import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { apiEvent, apiOnFreshResources, drainQueue, type HandlerCore, parseBody } from './api-harness.ts';

const ALICE = 'arn:aws:sts::111111111111:assumed-role/Mailer/session-1';
const ALICE_AGAIN = 'arn:aws:sts::111111111111:assumed-role/Mailer/session-2';
const BOB = 'arn:aws:iam::222222222222:user/bob';
const AUDITOR = 'arn:aws:iam::333333333333:role/Auditor';

const api = apiOnFreshResources({
  ALLOWED_FROM_DOMAINS: 'example.com,*.corp.example',
  READ_ALL_PRINCIPALS: AUDITOR,
});

const logs: Record<string, unknown>[] = [];
class Capture extends LogFormatter {
  formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    const entry = { message: attributes.message, ...additional };
    logs.push(entry);
    return new LogItem({ attributes: entry });
  }
}
let handler: HandlerCore;
beforeAll(() => {
  const logger = new Logger({ serviceName: 'smtpq-api-test', logLevel: 'INFO', logFormatter: new Capture() });
  handler = createApiHandler(createAwsDeps(api.config, logger));
});

const request = (from: string) => ({ from, to: ['x@example.org'], text: 'hi' });
const as = (caller: string, options: Parameters<typeof apiEvent>[0]) =>
  handler(apiEvent({ ...options, caller }));
async function submitAs(caller: string, from = 'alice@example.com', headers: Record<string, string> = {}) {
  const response = await as(caller, { method: 'POST', path: '/v1/messages', body: request(from), headers });
  expect(response.statusCode, response.body).toBe(202);
  return parseBody(response).id as string;
}

describe('allowed senders (ALLOWED_FROM_DOMAINS)', () => {
  it.each(['alice@example.com', 'ALICE@Example.COM', 'ops@mail.corp.example'])('takes %s', async (from) => {
    await submitAs(ALICE, from);
  });

  it.each(['mallory@evil.example', 'alice@sub.example.com', 'ops@corp.example'])(
    'refuses %s with 403 sender_not_allowed naming the address, and queues nothing',
    async (from) => {
      await drainQueue(api.resources);
      const response = await as(ALICE, { method: 'POST', path: '/v1/messages', body: request(from) });
      expect(response.statusCode).toBe(403);
      expect(parseBody(response)).toMatchObject({
        error: 'sender_not_allowed',
        message: expect.stringContaining(from.toLowerCase().replace(/@.*/, '')),
      });
      expect(await drainQueue(api.resources)).toEqual([]);
    },
  );

  it('refuses per item in a batch', async () => {
    const response = await as(ALICE, {
      method: 'POST',
      path: '/v1/messages/batch',
      body: { messages: [request('a@example.com'), request('a@evil.example')] },
    });
    const { results } = parseBody(response) as { results: Record<string, unknown>[] };
    expect(results[0]).toMatchObject({ status: 'queued' });
    expect(results[1]).toMatchObject({
      error: { code: 'sender_not_allowed', message: expect.stringContaining('a@evil.example') },
    });
    await drainQueue(api.resources);
  });
});

describe('the caller', () => {
  it('is recorded on the message (a role without its session name) and on every log line of the request', async () => {
    logs.length = 0;
    const id = await submitAs(ALICE);

    expect((await api.ledger.get(id))!.value.caller).toEqual({
      principal: 'arn:aws:sts::111111111111:assumed-role/Mailer',
      accountId: '111111111111',
      accessKey: 'AKIAEXAMPLEKEY',
    });
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs)
      expect(line).toMatchObject({ caller: 'arn:aws:sts::111111111111:assumed-role/Mailer' });
    // The status view shows who, not with which key, and never the Idempotency-Key.
    const view = parseBody(await as(ALICE, { path: `/v1/messages/${id}` }));
    expect(view.caller).toEqual({
      principal: 'arn:aws:sts::111111111111:assumed-role/Mailer',
      accountId: '111111111111',
    });
  });

  it("reads only its own messages: another caller's id is 404 for status, transcript and cancel, and absent from the list", async () => {
    const mine = await submitAs(ALICE);
    const other = await submitAs(BOB);

    for (const path of [`/v1/messages/${mine}`, `/v1/messages/${mine}/transcript`])
      expect((await as(BOB, { path })).statusCode).toBe(404);
    expect((await as(BOB, { method: 'POST', path: `/v1/messages/${mine}/cancel` })).statusCode).toBe(404);
    expect((await as(ALICE_AGAIN, { path: `/v1/messages/${mine}` })).statusCode).toBe(200);
    const listed = async (caller: string) =>
      (
        parseBody(await as(caller, { path: '/v1/messages', query: { limit: '100' } })).data as {
          id: string;
        }[]
      ).map((m) => m.id);
    expect(await listed(BOB)).toContain(other);
    expect(await listed(BOB)).not.toContain(mine);
    expect(await listed(ALICE)).toContain(mine);
    expect(await listed(ALICE)).not.toContain(other);
    // READ_ALL_PRINCIPALS reads everyone's.
    expect((await as(AUDITOR, { path: `/v1/messages/${mine}` })).statusCode).toBe(200);
    expect(await listed(AUDITOR)).toEqual(expect.arrayContaining([mine, other]));
  });

  it('scopes Idempotency-Keys per caller: the same key of another caller is another message, and the view hides it', async () => {
    const key = { 'idempotency-key': 'order-1234' };
    const alice = await submitAs(ALICE, 'alice@example.com', key);
    const aliceAgain = await as(ALICE_AGAIN, {
      method: 'POST',
      path: '/v1/messages',
      body: request('alice@example.com'),
      headers: key,
    });
    const bob = await submitAs(BOB, 'bob@example.com', key);

    expect(parseBody(aliceAgain).id).toBe(alice);
    expect(aliceAgain.headers?.['idempotent-replayed']).toBe('true');
    expect(bob).not.toBe(alice);
    expect(parseBody(await as(ALICE, { path: `/v1/messages/${alice}` }))).not.toHaveProperty(
      'idempotencyKey',
    );
  });
});
