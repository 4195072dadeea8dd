// POST /v1/messages through the real handler against moto: the message on SQS carrying its initial status
// record, the same record in the DynamoDB ledger (with its TTL), and every way a request is refused (400,
// 413, 415) without anything stored or enqueued.
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import {
  apiEvent,
  apiOnFreshResources,
  drainQueue,
  ledgerIds,
  parseBody,
  validRequest,
} from './api-harness.ts';

const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

const api = apiOnFreshResources({
  MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
  MESSAGE_ID_DOMAIN: 'mail.test',
  RETENTION_DAYS: '7',
});

async function s3Json(key: string): Promise<unknown> {
  const object = await api.resources.clients.s3.send(
    new GetObjectCommand({ Bucket: api.resources.bucket, Key: key }),
  );
  return JSON.parse(await object.Body!.transformToString());
}

const submit = (body: unknown, headers: Record<string, string> = {}) =>
  api.handler(apiEvent({ method: 'POST', path: '/v1/messages', body, headers }));

describe('POST /v1/messages', () => {
  it('enqueues the request with its initial record and writes the same record to the ledger', async () => {
    // Act
    const response = await submit(validRequest);

    // Assess: the answer
    expect(response.statusCode).toBe(202);
    const { id, status } = parseBody(response) as { id: string; status: string };
    expect(status).toBe('queued');
    expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    // the ledger
    const stored = await api.ledger.get(id);
    expect(stored?.version).toBe('1.queued');
    const record = stored!.value;
    expect(record).toMatchObject({
      id,
      state: 'queued',
      messageId: `<${id}@mail.test>`,
      from: 'alice@example.com',
      subject: 'Hello',
      attempts: 0,
      transcripts: [],
    });
    expect(record).not.toHaveProperty('idempotencyKey');
    expect(record.recipients.map((r) => [r.kind, r.address, r.state])).toEqual([
      ['to', 'bob@example.org', 'queued'],
      ['cc', 'carol@example.org', 'queued'],
      ['bcc', 'dave@example.org', 'queued'],
    ]);
    const { Item } = await api.resources.clients.documents.send(
      new GetCommand({ TableName: api.resources.table, Key: { pk: `msg#${id}` } }),
    );
    expect(Item).toMatchObject({
      listState: 'queued',
      expiresAt: Math.floor(Date.parse(record.createdAt) / 1000) + 7 * 86_400,
    });

    // and the queue: the message carries the record the ledger holds, and the request.
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued).toHaveLength(1);
    const message = queued[0] as { v: 1; id: string; record: unknown; request: Record<string, unknown> };
    expect(message.v).toBe(1);
    expect(message.id).toBe(id);
    expect(message.record).toEqual(record);
    expect(message.request).toMatchObject({
      from: { name: 'Alice', address: 'alice@example.com' },
      to: [{ address: 'bob@example.org' }],
      subject: 'Hello',
      text: 'Hi Bob',
      messageId: `<${id}@mail.test>`,
      date: record.createdAt,
    });
  });

  it('accepts a base64-encoded body (API Gateway does this for some content types)', async () => {
    const response = await api.handler(
      apiEvent({ method: 'POST', path: '/v1/messages', body: validRequest, base64: true }),
    );

    expect(response.statusCode).toBe(202);
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    expect(queued.map((m) => m.id)).toEqual([parseBody(response).id]);
  });

  it('answers 400 with the path of every invalid field, and enqueues nothing', async () => {
    const response = await submit({
      from: 'not an address',
      to: ['bob@example.org', 'evil@example.org\r\nBcc: victim@example.org'],
      subject: 'ok',
      text: 'x',
      headers: { 'X-Inject': 'a\r\nBcc: victim@example.org' },
      surprise: true,
    });

    expect(response.statusCode).toBe(400);
    const body = parseBody(response) as { error: string; issues: { path: string; message: string }[] };
    expect(body.error).toBe('validation_failed');
    const paths = body.issues.map((issue) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['from', 'to[1]', 'headers.X-Inject', 'surprise']));
    for (const issue of body.issues) expect(issue.message).not.toBe('');
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('answers 400 for a body that is not valid JSON', async () => {
    const response = await api.handler(
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        rawBody: '{"from": ',
        headers: { 'content-type': 'application/json' },
      }),
    );

    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({ error: 'invalid_json' });
  });

  it('answers 400 for a JSON body that is not an object', async () => {
    const response = await submit(['a', 'list']);

    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({ error: 'validation_failed', issues: [{ path: '' }] });
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['form data', 'application/x-www-form-urlencoded'],
    ['JSON in another charset', 'application/json; charset=iso-8859-1'],
  ])('answers 415 for %s', async (_name, contentType) => {
    const response = await api.handler(
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        rawBody: JSON.stringify(validRequest),
        headers: { 'content-type': contentType },
      }),
    );

    expect(response.statusCode).toBe(415);
    expect(parseBody(response)).toMatchObject({ error: 'unsupported_media_type' });
  });

  it('answers 415 when the content type is missing', async () => {
    const response = await api.handler(
      apiEvent({ method: 'POST', path: '/v1/messages', rawBody: JSON.stringify(validRequest) }),
    );

    expect(response.statusCode).toBe(415);
  });

  it('answers 413 when the decoded message exceeds MAX_MESSAGE_BYTES, and enqueues nothing', async () => {
    const content = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 7).toString('base64');
    const response = await submit({
      ...validRequest,
      attachments: [{ filename: 'big.bin', content }],
    });

    expect(response.statusCode).toBe(413);
    expect(parseBody(response)).toMatchObject({ error: 'payload_too_large' });
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('stores nothing in the ledger for a refused request', async () => {
    const before = await ledgerIds(api.resources);

    const responses = [
      await submit({ ...validRequest, from: 'nobody' }),
      await submit(validRequest, { 'Idempotency-Key': '' }),
      await api.handler(apiEvent({ method: 'POST', path: '/v1/messages', rawBody: '{', headers: {} })),
    ];

    expect(responses.map((r) => r.statusCode)).toEqual([400, 400, 415]);
    expect((await ledgerIds(api.resources)).sort()).toEqual(before.sort());
  });

  it('stores a request too big for an SQS message in S3 and enqueues a pointer (claim check)', async () => {
    // Prepare: 1 MiB decoded is 1.33 MiB of base64, over the inline limit.
    const content = Buffer.alloc(1024 * 1024, 42).toString('base64');

    // Act
    const response = await submit({ ...validRequest, attachments: [{ filename: 'big.bin', content }] });

    // Assess
    expect(response.statusCode).toBe(202);
    const id = parseBody(response).id as string;
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    const record = (await api.ledger.get(id))!.value;
    expect(queued).toEqual([{ v: 1, id, record, payloadKey: `payloads/${id}.json` }]);
    const payload = (await s3Json(`payloads/${id}.json`)) as {
      attachments: { content: string }[];
      messageId: string;
    };
    expect(payload.attachments[0]!.content).toBe(content);
    expect(payload.messageId).toBe(`<${id}@mail.test>`);
  });

  it('sizes the claim check by the SQS-safe body, whose escapes of U+FFFF make it longer', async () => {
    // Prepare: 300,000 x U+FFFF are 900,000 bytes of UTF-8, under the inline limit as plain JSON, but
    // 1,800,000 bytes once escaped as \uffff for SQS (which refuses the raw character).
    const small = { ...validRequest, subject: 'odd \uFFFF \uFFFE', text: 'x\uFFFFy \uD800' };
    const large = { ...validRequest, text: '\uFFFF'.repeat(300_000) };

    // Act
    const smallResponse = await submit(small);
    const largeResponse = await submit(large);

    // Assess
    expect(smallResponse.statusCode).toBe(202);
    expect(largeResponse.statusCode).toBe(202);
    const smallId = parseBody(smallResponse).id as string;
    const largeId = parseBody(largeResponse).id as string;
    const queued = (await drainQueue(api.resources)) as QueueMessage[];
    const inline = queued.find((m) => m.id === smallId) as { request: typeof small };
    expect(inline.request).toMatchObject({ subject: small.subject, text: small.text });
    expect(queued.find((m) => m.id === largeId)).toEqual({
      v: 1,
      id: largeId,
      record: expect.objectContaining({ id: largeId, state: 'queued' }),
      payloadKey: `payloads/${largeId}.json`,
    });
    expect(((await s3Json(`payloads/${largeId}.json`)) as { text: string }).text).toBe(large.text);
  });

  // A DynamoDB string must be valid UTF-8: a subject (or tag value) with a lone UTF-16 surrogate could be
  // queued but never recorded, so it is refused up front.
  it('refuses, or records, a subject with a lone surrogate: never a 202 without a ledger entry', async () => {
    const response = await submit({ ...validRequest, subject: 'broken \uD800 pair' });

    const id = parseBody(response).id as string | undefined;
    const recorded = id !== undefined && (await api.ledger.get(id)) !== undefined;
    await drainQueue(api.resources);
    expect(response.statusCode === 400 || (response.statusCode === 202 && recorded)).toBe(true);
  });

  it('answers 400, not 500, to a valid request carrying a deeply nested extra field', async () => {
    // 20,000 levels in 120 kB: deep enough to overflow any recursive walk of the parsed body.
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const rawBody = JSON.stringify(validRequest).replace(/}$/, `,"extra":${deep}}`);

    const submitted = await api.handler(
      apiEvent({
        method: 'POST',
        path: '/v1/messages',
        rawBody,
        headers: { 'content-type': 'application/json', 'idempotency-key': 'deep-1' },
      }),
    );
    const batched = await api.handler(
      apiEvent({
        method: 'POST',
        path: '/v1/messages/batch',
        rawBody: `{"messages":[${rawBody}]}`,
        headers: { 'content-type': 'application/json' },
      }),
    );

    for (const response of [submitted, batched]) {
      expect(response.statusCode).toBe(400);
      expect(parseBody(response)).toMatchObject({ error: 'invalid_json' });
    }
    expect(await drainQueue(api.resources)).toEqual([]);
  });

  it('never answers 500 to arbitrary bodies, content types and idempotency keys', async () => {
    // Any JSON value, or any text, under a JSON or other content type: always a 4xx (or 202 if it happens
    // to be a valid request), never an unexpected error.
    const body = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
      fc
        .record({ from: fc.string(), to: fc.array(fc.string()), text: fc.string() })
        .map((v) => JSON.stringify(v)),
    );
    const contentType = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'text/plain',
      '',
    );
    const key = fc.option(fc.string({ maxLength: 300 }), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(
        body,
        contentType,
        key,
        fc.boolean(),
        async (rawBody, type, idempotencyKey, base64) => {
          const headers: Record<string, string> = type ? { 'content-type': type } : {};
          if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
          const response = await api.handler(
            apiEvent({ method: 'POST', path: '/v1/messages', rawBody, headers, base64 }),
          );
          expect([202, 400, 413, 415, 422]).toContain(response.statusCode);
          expect(() => JSON.parse(response.body ?? '')).not.toThrow();
        },
      ),
      { numRuns: 200 },
    );
    await drainQueue(api.resources);
  });
});
