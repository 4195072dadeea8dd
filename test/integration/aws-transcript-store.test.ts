// S3TranscriptStore and S3PayloadStore against moto: plain-text transcripts per attempt, claim-check payloads.
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  CorruptObjectError,
  InvalidKeyError,
  S3PayloadStore,
  S3TranscriptStore,
} from '../../lib/aws/index.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
let transcripts: S3TranscriptStore;
let payloads: S3PayloadStore;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  transcripts = new S3TranscriptStore(resources.clients.s3, resources.bucket);
  payloads = new S3PayloadStore(resources.clients.s3, resources.bucket);
});

describe('S3TranscriptStore', () => {
  it('stores transcripts/<id>/<attempt>.log as text/plain and reads each attempt back', async () => {
    const key = await transcripts.put('t-1', 1, 'S: 220 ready\r\nC: EHLO x\r\n');
    await transcripts.put('t-1', 2, 'S: 421 busy\r\n');

    expect(key).toBe('transcripts/t-1/1.log');
    expect(await transcripts.get('t-1', 1)).toBe('S: 220 ready\r\nC: EHLO x\r\n');
    expect(await transcripts.get('t-1', 2)).toBe('S: 421 busy\r\n');
    const object = await resources.clients.s3.send(
      new GetObjectCommand({ Bucket: resources.bucket, Key: key }),
    );
    expect(object.ContentType).toMatch(/^text\/plain/);
  });

  it('returns the latest attempt when none is asked for, comparing numbers (10 after 9)', async () => {
    for (const attempt of [1, 2, 9, 10]) await transcripts.put('t-2', attempt, `attempt ${attempt}`);

    expect(await transcripts.get('t-2')).toBe('attempt 10');
  });

  it('answers undefined for a message without transcripts, a missing attempt or a bad id', async () => {
    await transcripts.put('t-3', 1, 'only one');
    expect(await transcripts.get('none-yet')).toBeUndefined();
    expect(await transcripts.get('t-3', 2)).toBeUndefined();
    expect(await transcripts.get('t-3', 0)).toBeUndefined();
    expect(await transcripts.get('../messages/t-3')).toBeUndefined();
    await expect(transcripts.put('t-3', 1.5, 'x')).rejects.toBeInstanceOf(InvalidKeyError);
  });
});

describe('S3PayloadStore', () => {
  it('stores a request under payloads/<id>.json and reads it back by the key it returned', async () => {
    const request = { from: 'a@example.com', to: ['b@example.org'], text: 'x'.repeat(300_000) };

    const key = await payloads.put('p-1', request);

    expect(key).toBe('payloads/p-1.json');
    expect(await payloads.get(key)).toEqual(request);
  });

  it('answers undefined for a payload that is gone', async () => {
    expect(await payloads.get('payloads/never.json')).toBeUndefined();
  });

  it('refuses a key outside payloads/ (a forged queue message cannot read the ledger)', async () => {
    await expect(payloads.get('messages/p-1.json')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(payloads.get('payloads/../messages/x.json')).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('reports a payload that is not JSON as corrupt', async () => {
    await resources.clients.s3.send(
      new PutObjectCommand({ Bucket: resources.bucket, Key: 'payloads/bad.json', Body: 'not json' }),
    );
    await expect(payloads.get('payloads/bad.json')).rejects.toBeInstanceOf(CorruptObjectError);
  });
});
