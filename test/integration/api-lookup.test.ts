// GET /v1/messages/{id} and /transcript against moto: the record as the API wrote it to the ledger, the
// worker's progress as the worker writes it (a lease, TranscriptRefs into the transcript of the SMTP
// connection that carried the message, shared with the other messages pipelined on it), and the 400/404/405
// answers for everything else, each with a JSON body.
import { beforeAll, describe, expect, it } from 'vitest';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import type { StatusRecord, TranscriptRef } from '../../lib/delivery/ports.ts';
import { createTranscript } from '../../lib/smtp/transcript.ts';
import { apiEvent, apiOnFreshResources, drainQueue, parseBody, validRequest } from './api-harness.ts';

let transcripts: S3TranscriptStore;
/** Two messages submitted through the API, later carried by the same connections. */
let id: string;
let other: string;

const api = apiOnFreshResources();

const submitOne = async (subject: string) => {
  const submitted = await api.handler(
    apiEvent({ method: 'POST', path: '/v1/messages', body: { ...validRequest, subject } }),
  );
  return parseBody(submitted).id as string;
};

beforeAll(async () => {
  transcripts = new S3TranscriptStore(api.resources.clients.s3, api.resources.bucket);
  id = await submitOne('first');
  other = await submitOne('second');
  await drainQueue(api.resources);
});

const get = (path: string, query?: Record<string, string>) =>
  api.handler(apiEvent({ method: 'GET', path, ...(query ? { query } : {}) }));

/** Writes `change` over the current record, as a worker does, at the version it read. */
async function workerWrites(
  messageId: string,
  change: (record: StatusRecord) => StatusRecord,
): Promise<void> {
  const current = (await api.ledger.get(messageId))!;
  await api.ledger.update(change(current.value), current.version);
}

/**
 * The transcript of one SMTP connection that carried both messages pipelined, as lib/delivery writes it: the
 * connection's own lines untagged, each transaction's lines tagged with its message. Returns the two refs
 * (line runs worked out by hand from the line numbers in the comments).
 */
async function sharedConnection(
  key: string,
  attempt: number,
): Promise<{ a: TranscriptRef; b: TranscriptRef }> {
  const t = createTranscript();
  t.add('*', 'connected to mx.example.org:25'); // 0
  t.add('S', '220 mx.example.org ESMTP'); // 1
  t.add('C', 'EHLO worker.example.com'); // 2
  t.add('S', '250-mx.example.org'); // 3
  t.add('S', '250 PIPELINING'); // 4
  t.add('C', 'MAIL FROM:<alice@example.com>', id); // 5
  t.add('C', 'RCPT TO:<bob@example.org>', id); // 6
  t.add('S', '250 2.1.0 ok', id); // 7
  t.add('S', '250 2.1.5 bob ok', id); // 8
  t.add('C', 'MAIL FROM:<alice@example.com>', other); // 9
  t.add('C', 'RCPT TO:<zed@example.net>', other); // 10
  t.add('S', '250 2.1.0 ok', other); // 11
  t.add('S', '550 5.1.1 zed unknown', other); // 12
  t.add('S', `250 2.0.0 attempt ${attempt} queued`, id); // 13
  t.add('C', 'QUIT'); // 14
  t.add('S', '221 bye'); // 15
  await transcripts.put(key, t.toString());
  return {
    a: {
      attempt,
      key,
      lines: [
        [0, 8],
        [13, 15],
      ],
    },
    b: {
      attempt,
      key,
      lines: [
        [0, 4],
        [9, 12],
        [14, 15],
      ],
    },
  };
}

/** The transcript lines without their timestamps (an event's `*` is padded to the width of `C:`). */
const lines = (text: string | undefined) =>
  (text ?? '')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.replace(/^\S+ /, '').replace(/^\* {2}/, '* '));

describe('GET /v1/messages/{id}', () => {
  it('returns the status record of a submitted message, as the ledger holds it', async () => {
    const response = await get(`/v1/messages/${id}`);

    expect(response.statusCode).toBe(200);
    const body = parseBody(response);
    expect(body).toMatchObject({
      id,
      state: 'queued',
      subject: 'first',
      from: 'alice@example.com',
      recipients: [
        { address: 'bob@example.org', kind: 'to', state: 'queued' },
        { address: 'carol@example.org', kind: 'cc', state: 'queued' },
        { address: 'dave@example.org', kind: 'bcc', state: 'queued' },
      ],
      transcripts: [],
    });
    // Nothing of the item's own attributes (key, version, index, TTL) leaks into the view.
    for (const internal of ['pk', 'v', 'listState', 'listAt', 'expiresAt'])
      expect(body).not.toHaveProperty(internal);
  });

  it('shows the worker’s progress: one transcript link per attempt, without the lease', async () => {
    // Prepare: what a worker writes once a message has been sent on two connections in attempt 1 (it
    // reconnected) and then again in attempt 2.
    const ref = (attempt: number, key: string): TranscriptRef => ({ attempt, key, lines: [[0, 3]] });
    await workerWrites(other, (record) => ({
      ...record,
      state: 'sending',
      attempts: 2,
      transcripts: [
        ref(1, 'transcripts/2031-01-02/status-1.log'),
        ref(1, 'transcripts/2031-01-02/status-2.log'),
        ref(2, 'transcripts/2031-01-02/status-3.log'),
      ],
      lease: { owner: 'worker-1', until: new Date(Date.now() + 60_000).toISOString() },
    }));

    // Act
    const body = parseBody(await get(`/v1/messages/${other}`));

    // Assess
    expect(body).toMatchObject({ state: 'sending', attempts: 2 });
    expect(body.transcripts).toEqual([
      { attempt: 1, href: `/v1/messages/${other}/transcript?attempt=1` },
      { attempt: 2, href: `/v1/messages/${other}/transcript?attempt=2` },
    ]);
    expect(body).not.toHaveProperty('lease');
    expect(body).not.toHaveProperty('requestFingerprint');
  });

  it('answers 404 for an unknown id', async () => {
    const response = await get('/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV');

    expect(response.statusCode).toBe(404);
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it.each(['not-an-id', '..%2Fidem%23x', '01arz3ndektsv4rrffq69g5fav'])(
    'answers 400 for the malformed id %s',
    async (bad) => {
      const response = await get(`/v1/messages/${bad}`);

      expect(response.statusCode).toBe(400);
      expect(parseBody(response)).toMatchObject({ error: 'bad_request' });
    },
  );
});

describe('GET /v1/messages/{id}/transcript', () => {
  it('gives each message of a shared connection the session’s lines and its own, never the other’s', async () => {
    // Prepare: both messages on one connection in attempt 1; the worker records a ref for each.
    const { a, b } = await sharedConnection('transcripts/2031-01-02/inv-1-1.log', 1);
    await workerWrites(id, (record) => ({ ...record, state: 'deferred', attempts: 1, transcripts: [a] }));
    await workerWrites(other, (record) => ({ ...record, state: 'failed', transcripts: [b] }));

    // Act
    const first = await get(`/v1/messages/${id}/transcript`, { attempt: '1' });
    const second = await get(`/v1/messages/${other}/transcript`, { attempt: '1' });

    // Assess
    expect(first.statusCode).toBe(200);
    expect(first.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8' });
    expect(lines(first.body)).toEqual([
      '* connected to mx.example.org:25',
      'S: 220 mx.example.org ESMTP',
      'C: EHLO worker.example.com',
      'S: 250-mx.example.org',
      'S: 250 PIPELINING',
      'C: MAIL FROM:<alice@example.com>',
      'C: RCPT TO:<bob@example.org>',
      'S: 250 2.1.0 ok',
      'S: 250 2.1.5 bob ok',
      'S: 250 2.0.0 attempt 1 queued',
      'C: QUIT',
      'S: 221 bye',
    ]);
    expect(first.body).not.toContain('zed@example.net');
    expect(second.statusCode).toBe(200);
    expect(lines(second.body)).toEqual([
      '* connected to mx.example.org:25',
      'S: 220 mx.example.org ESMTP',
      'C: EHLO worker.example.com',
      'S: 250-mx.example.org',
      'S: 250 PIPELINING',
      'C: MAIL FROM:<alice@example.com>',
      'C: RCPT TO:<zed@example.net>',
      'S: 250 2.1.0 ok',
      'S: 550 5.1.1 zed unknown',
      'C: QUIT',
      'S: 221 bye',
    ]);
    expect(second.body).not.toContain('bob@example.org');
    expect(second.body).not.toContain('attempt 1 queued');
  });

  it('serves the latest attempt without ?attempt, and an attempt on two connections as one transcript', async () => {
    // Prepare: attempt 2 of the first message broke off on one connection and went on on the next.
    const broken = 'transcripts/2031-01-02/inv-2-1.log';
    const resumed = 'transcripts/2031-01-02/inv-2-2.log';
    const { a } = await sharedConnection('transcripts/2031-01-02/inv-1-1.log', 1);
    await transcripts.put(broken, 'T S: 220 first\nT * the connection broke; reconnecting\n');
    await transcripts.put(resumed, 'T S: 220 second\nT C: RCPT TO:<bob@example.org>\nT S: 250 ok\n');
    await workerWrites(id, (record) => ({
      ...record,
      state: 'sent',
      attempts: 2,
      transcripts: [
        a,
        { attempt: 2, key: broken, lines: [[0, 1]] },
        { attempt: 2, key: resumed, lines: [[0, 2]] },
      ],
    }));

    // Act
    const latest = await get(`/v1/messages/${id}/transcript`);
    const explicit = await get(`/v1/messages/${id}/transcript`, { attempt: '2' });
    const earlier = await get(`/v1/messages/${id}/transcript`, { attempt: '1' });

    // Assess
    expect(latest.statusCode).toBe(200);
    expect(lines(latest.body)).toEqual([
      'S: 220 first',
      '* the connection broke; reconnecting',
      'S: 220 second',
      'C: RCPT TO:<bob@example.org>',
      'S: 250 ok',
    ]);
    expect(explicit.body).toBe(latest.body);
    expect(earlier.body).toContain('attempt 1 queued');
    expect(earlier.body).not.toContain('220 second');
  });

  it('answers 404 for an attempt that has no transcript', async () => {
    const response = await get(`/v1/messages/${id}/transcript`, { attempt: '9' });

    expect(response.statusCode).toBe(404);
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it('answers 404 when the transcript object is gone (expired from the bucket)', async () => {
    const fresh = await submitOne('expired transcript');
    await workerWrites(fresh, (record) => ({
      ...record,
      state: 'sent',
      attempts: 1,
      transcripts: [{ attempt: 1, key: 'transcripts/2031-01-02/gone.log', lines: [[0, 9]] }],
    }));
    await drainQueue(api.resources);

    const response = await get(`/v1/messages/${fresh}/transcript`);

    expect(response.statusCode).toBe(404);
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it('answers 404 for a message without transcripts, and for an unknown message', async () => {
    const fresh = await submitOne('no transcript yet');
    await drainQueue(api.resources);

    expect((await get(`/v1/messages/${fresh}/transcript`)).statusCode).toBe(404);
    expect((await get('/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV/transcript')).statusCode).toBe(404);
  });

  it.each(['0', '-1', 'two', '1.5'])('answers 400 for ?attempt=%s', async (attempt) => {
    const response = await get(`/v1/messages/${id}/transcript`, { attempt });

    expect(response.statusCode).toBe(400);
    expect(parseBody(response)).toMatchObject({ error: 'bad_request' });
  });
});

describe('routing', () => {
  it('answers 404 with a JSON body for an unknown route', async () => {
    const response = await get('/v2/things');

    expect(response.statusCode).toBe(404);
    expect(response.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' });
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it('answers 405 with an Allow header for a wrong method', async () => {
    const response = await api.handler(apiEvent({ method: 'DELETE', path: `/v1/messages/${id}` }));

    expect(response.statusCode).toBe(405);
    expect(response.headers).toMatchObject({ allow: 'GET' });
    expect(parseBody(response)).toMatchObject({ error: 'method_not_allowed' });
  });
});
