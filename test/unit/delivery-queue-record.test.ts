// Reading an SQS message body: inline request, claim check, the initial status record it carries, and every
// way it can be malformed.
import { describe, expect, it } from 'vitest';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { MalformedRecordError, readQueueMessage } from '../../lib/delivery/queue-message.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';

/** The SQS body as the worker hands it over. */
const record = (body: string) => body;
const request = { from: 'alice@example.com', to: ['bob@example.org'], text: 'hi' };
const id = '01M8HDA3W9WPA155DKMNX073NB';
const noPayloads = { get: async () => undefined };

/** The initial status record as the API builds it (functions/api/accept.ts) and puts it on the queue. */
function initialRecord(send: unknown = request, options: { idempotencyKey?: string } = {}): StatusRecord {
  const validated = validateSendRequest(send);
  if (!validated.ok) throw new Error('fixture invalid');
  return newRecord(validated.value, id, new Date('2026-11-28T10:00:00.000Z'), {
    messageIdDomain: 'smtpq.test',
    ...options,
  }).record;
}
const initial = initialRecord();

async function malformed(body: string, payloads = noPayloads): Promise<MalformedRecordError> {
  const error = await readQueueMessage(body, payloads).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(MalformedRecordError);
  return error as MalformedRecordError;
}

describe('readQueueMessage', () => {
  it('reads an inline request, validated', async () => {
    const content = await readQueueMessage(
      record(JSON.stringify({ v: 1, id, record: initial, request })),
      noPayloads,
    );
    expect(content.id).toBe(id);
    expect(content.request.to).toEqual([{ address: 'bob@example.org' }]);
    expect(content.record).toEqual(initial);
  });

  it("carries the API's initial status record, every optional field included", async () => {
    const full = initialRecord(
      { ...request, subject: 'Hi', cc: ['carol@example.org'], tags: { campaign: 'c1' } },
      { idempotencyKey: 'k-1' },
    );
    const withFingerprint = { ...full, requestFingerprint: 'sha256:abc' };
    const content = await readQueueMessage(
      record(JSON.stringify({ v: 1, id, record: withFingerprint, request })),
      noPayloads,
    );
    expect(content.record).toEqual(withFingerprint);
    expect(content.record).toMatchObject({
      state: 'queued',
      attempts: 0,
      subject: 'Hi',
      tags: { campaign: 'c1' },
    });
  });

  it('a queue message without its initial status record is malformed', async () => {
    const error = await malformed(JSON.stringify({ v: 1, id, request }));
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^body is not a queue message: /);
  });

  it("a record of another message is malformed, with the queue message's id", async () => {
    const other = { ...initial, id: '01M8HDA3W9WPA155DKMNX073NC' };
    const error = await malformed(JSON.stringify({ v: 1, id, record: other, request }));
    expect(error.id).toBe(id);
    expect(error.message).toBe(`record.id ${other.id} is not the message id`);
  });

  it.each([
    ['a state other than queued', { state: 'sent' }],
    ['attempts already made', { attempts: 1 }],
    ['transcripts already recorded', { transcripts: [{ attempt: 1, key: 'k', lines: [[0, 1]] }] }],
    ['a lease', { lease: { owner: 'w1', until: '2026-11-28T10:00:00.000Z' } }],
    ['no recipients', { recipients: [] }],
    ['a recipient already delivered', { recipients: [{ ...initial.recipients[0]!, state: 'delivered' }] }],
    ['a creation time that is not ISO', { createdAt: 'yesterday' }],
  ])('a record that is not an initial one is malformed: %s', async (_what, patch) => {
    const error = await malformed(JSON.stringify({ v: 1, id, record: { ...initial, ...patch }, request }));
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^body is not a queue message: /);
  });

  it('reads a claim-check request from the payload store', async () => {
    const keys: string[] = [];
    const payloads = {
      get: async (key: string) => {
        keys.push(key);
        return request;
      },
    };
    const content = await readQueueMessage(
      record(JSON.stringify({ v: 1, id, record: initial, payloadKey: `payloads/${id}.json` })),
      payloads,
    );
    expect(keys).toEqual([`payloads/${id}.json`]);
    expect(content.request.from.address).toBe('alice@example.com');
    expect(content.record).toEqual(initial);
  });

  it('not JSON: no id', async () => {
    const error = await malformed('{"v":1,');
    expect(error.message).toBe('body is not JSON (7 characters)');
    expect(error.id).toBeUndefined();
  });

  it('wrong shape: the id is kept when it is well-formed', async () => {
    const error = await malformed(JSON.stringify({ v: 2, id, record: initial, request }));
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^body is not a queue message: /);
    expect(
      (await malformed(JSON.stringify({ v: 1, id: '../x', record: initial, request }))).id,
    ).toBeUndefined();
    expect((await malformed(JSON.stringify([1, 2]))).id).toBeUndefined();
    expect((await malformed(JSON.stringify({ v: 1, id, record: initial }))).id).toBe(id);
  });

  it('an invalid request names the fields', async () => {
    const error = await malformed(
      JSON.stringify({
        v: 1,
        id,
        record: initial,
        request: { ...request, to: ['bob@example.org\r\nRCPT TO:<x@y>'] },
      }),
    );
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^invalid send request: to/);
  });

  it('a missing or refused payload is malformed; a store outage is not', async () => {
    const pointer = JSON.stringify({ v: 1, id, record: initial, payloadKey: `payloads/${id}.json` });
    expect((await malformed(pointer)).message).toBe(`claim-check payload payloads/${id}.json is missing`);
    const refused = {
      get: async () => Promise.reject(Object.assign(new Error('not a payload key'), { code: 'INVALID_KEY' })),
    };
    expect((await malformed(pointer, refused)).message).toMatch(/not a payload key/);
    const outage = {
      get: async () => Promise.reject(Object.assign(new Error('503 Slow Down'), { name: 'SlowDown' })),
    };
    await expect(readQueueMessage(pointer, outage)).rejects.toThrow('503 Slow Down');
  });
});
