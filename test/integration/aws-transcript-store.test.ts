// S3TranscriptStore and S3PayloadStore against moto: one plain-text transcript per SMTP connection, cut into
// each message's part by its line runs; claim-check payloads.
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  CorruptObjectError,
  InvalidKeyError,
  S3PayloadStore,
  S3TranscriptStore,
} from '../../lib/aws/index.ts';
import { createTranscript } from '../../lib/smtp/transcript.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
let transcripts: S3TranscriptStore;
let payloads: S3PayloadStore;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  transcripts = new S3TranscriptStore(resources.clients.s3, resources.bucket);
  payloads = new S3PayloadStore(resources.clients.s3, resources.bucket);
});

/**
 * A connection that carried two pipelined messages, m1 and m2, as lib/delivery writes it: the connection's
 * own lines are untagged, each transaction's lines carry its message's tag. Line numbers in the comments.
 */
function twoMessageConnection(): string {
  const t = createTranscript();
  t.add('S', '220 mx.example.org ESMTP'); // 0
  t.add('C', 'EHLO worker.example.com'); // 1
  t.add('S', '250 mx.example.org'); // 2
  t.add('C', 'MAIL FROM:<alice@example.com>', 'm1'); // 3
  t.add('C', 'RCPT TO:<bob@example.org>', 'm1'); // 4
  t.add('C', 'MAIL FROM:<alice@example.com>', 'm2'); // 5
  t.add('C', 'RCPT TO:<carol@example.org>', 'm2'); // 6
  t.add('S', '250 2.0.0 queued as M1', 'm1'); // 7
  t.add('S', '250 2.0.0 queued as M2', 'm2'); // 8
  t.add('C', 'QUIT'); // 9
  return t.toString();
}

describe('S3TranscriptStore', () => {
  it('stores a connection transcript as text/plain and serves each message its part', async () => {
    // Prepare
    const key = 'transcripts/2031-01-02/inv-abc-1.log';
    const text = twoMessageConnection();
    await transcripts.put(key, text);

    // Act
    const first = await transcripts.part({
      attempt: 1,
      key,
      lines: [
        [0, 4],
        [7, 7],
        [9, 9],
      ],
    });
    const second = await transcripts.part({
      attempt: 1,
      key,
      lines: [
        [0, 2],
        [5, 6],
        [8, 9],
      ],
    });

    // Assess: each part has the session's lines and its own transaction, never the other's.
    const lines = (text: string | undefined) => (text ?? '').split('\n').filter(Boolean);
    expect(lines(first).map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'S: 220 mx.example.org ESMTP',
      'C: EHLO worker.example.com',
      'S: 250 mx.example.org',
      'C: MAIL FROM:<alice@example.com>',
      'C: RCPT TO:<bob@example.org>',
      'S: 250 2.0.0 queued as M1',
      'C: QUIT',
    ]);
    expect(second).toContain('RCPT TO:<carol@example.org>');
    expect(second).toContain('queued as M2');
    expect(second).not.toContain('bob@example.org');
    expect(first).not.toContain('carol@example.org');
    expect(first!.endsWith('\n')).toBe(true);
    const object = await resources.clients.s3.send(
      new GetObjectCommand({ Bucket: resources.bucket, Key: key }),
    );
    expect(object.ContentType).toMatch(/^text\/plain/);
    expect(await object.Body!.transformToString()).toBe(text);
  });

  it('clips runs past the end of the transcript and skips empty lines', async () => {
    const key = 'transcripts/2031-01-02/inv-abc-2.log';
    await transcripts.put(key, 'line 0\n\nline 2\nline 3\n');

    expect(
      await transcripts.part({
        attempt: 1,
        key,
        lines: [
          [0, 1],
          [3, 99],
        ],
      }),
    ).toBe('line 0\nline 3\n');
    expect(await transcripts.part({ attempt: 1, key, lines: [[50, 60]] })).toBe('');
    expect(await transcripts.part({ attempt: 1, key, lines: [] })).toBe('');
  });

  it('answers undefined for a transcript that is not (or no longer) in the bucket', async () => {
    expect(
      await transcripts.part({ attempt: 1, key: 'transcripts/2031-01-02/never.log', lines: [[0, 5]] }),
    ).toBeUndefined();
  });

  it.each([
    'messages/x.json',
    'payloads/p-1.json',
    'transcripts/x.log',
    'transcripts/2031-01-02/../../payloads/p-1.log',
    'transcripts/2031-01-02/a/b.log',
    'transcripts/2031-1-2/a.log',
    'transcripts/2031-01-02/a.txt',
    '/transcripts/2031-01-02/a.log',
  ])('refuses %s, a key outside transcripts/<day>/<name>.log, for put and part', async (key) => {
    await expect(transcripts.put(key, 'x')).rejects.toBeInstanceOf(TypeError);
    expect(await transcripts.part({ attempt: 1, key, lines: [[0, 0]] })).toBeUndefined();
  });

  it('never reads another object through part, even one that exists', async () => {
    await payloads.put('p-secret', { text: 'secret' });

    expect(
      await transcripts.part({ attempt: 1, key: 'payloads/p-secret.json', lines: [[0, 10]] }),
    ).toBeUndefined();
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

  it('refuses a key outside payloads/ (a forged queue message cannot read a transcript)', async () => {
    await expect(payloads.get('transcripts/2031-01-02/a.log')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(payloads.get('payloads/../transcripts/x.json')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(payloads.put('a/b', {})).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('reports a payload that is not JSON as corrupt', async () => {
    await resources.clients.s3.send(
      new PutObjectCommand({ Bucket: resources.bucket, Key: 'payloads/bad.json', Body: 'not json' }),
    );
    await expect(payloads.get('payloads/bad.json')).rejects.toBeInstanceOf(CorruptObjectError);
  });
});
