// Reading an SQS record's body: inline request, claim check, and every way it can be malformed.
import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MalformedRecordError, readQueueRecord } from '../../functions/worker/queue-record.ts';

const record = (body: string) => ({ messageId: 'sqs-1', body }) as SQSRecord;
const request = { from: 'alice@example.com', to: ['bob@example.org'], text: 'hi' };
const id = '01M8HDA3W9WPA155DKMNX073NB';
const noPayloads = { get: async () => undefined };

async function malformed(body: string, payloads = noPayloads): Promise<MalformedRecordError> {
  const error = await readQueueRecord(record(body), payloads).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(MalformedRecordError);
  return error as MalformedRecordError;
}

describe('readQueueRecord', () => {
  it('reads an inline request, validated', async () => {
    const content = await readQueueRecord(record(JSON.stringify({ v: 1, id, request })), noPayloads);
    expect(content.id).toBe(id);
    expect(content.request.to).toEqual([{ address: 'bob@example.org' }]);
  });

  it('reads a claim-check request from the payload store', async () => {
    const keys: string[] = [];
    const payloads = {
      get: async (key: string) => {
        keys.push(key);
        return request;
      },
    };
    const content = await readQueueRecord(
      record(JSON.stringify({ v: 1, id, payloadKey: `payloads/${id}.json` })),
      payloads,
    );
    expect(keys).toEqual([`payloads/${id}.json`]);
    expect(content.request.from.address).toBe('alice@example.com');
  });

  it('not JSON: no id', async () => {
    const error = await malformed('{"v":1,');
    expect(error.message).toBe('body is not JSON (7 characters)');
    expect(error.id).toBeUndefined();
  });

  it('wrong shape: the id is kept when it is well-formed', async () => {
    const error = await malformed(JSON.stringify({ v: 2, id, request }));
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^body is not a queue message: /);
    expect((await malformed(JSON.stringify({ v: 1, id: '../x', request }))).id).toBeUndefined();
    expect((await malformed(JSON.stringify([1, 2]))).id).toBeUndefined();
    expect((await malformed(JSON.stringify({ v: 1, id }))).id).toBe(id);
  });

  it('an invalid request names the fields', async () => {
    const error = await malformed(
      JSON.stringify({ v: 1, id, request: { ...request, to: ['bob@example.org\r\nRCPT TO:<x@y>'] } }),
    );
    expect(error.id).toBe(id);
    expect(error.message).toMatch(/^invalid send request: to/);
  });

  it('a missing or refused payload is malformed; a store outage is not', async () => {
    const pointer = JSON.stringify({ v: 1, id, payloadKey: `payloads/${id}.json` });
    expect((await malformed(pointer)).message).toBe(`claim-check payload payloads/${id}.json is missing`);
    const refused = {
      get: async () => Promise.reject(Object.assign(new Error('not a payload key'), { code: 'INVALID_KEY' })),
    };
    expect((await malformed(pointer, refused)).message).toMatch(/not a payload key/);
    const outage = {
      get: async () => Promise.reject(Object.assign(new Error('503 Slow Down'), { name: 'SlowDown' })),
    };
    await expect(readQueueRecord(record(pointer), outage)).rejects.toThrow('503 Slow Down');
  });
});
