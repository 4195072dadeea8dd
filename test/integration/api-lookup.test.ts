// GET /v1/messages/{id} and /transcript against moto: the record as written at submit, transcripts written
// through the real store, and the 400/404/405 answers for everything else, each with a JSON body.
import { beforeAll, describe, expect, it } from 'vitest';
import { S3StatusStore } from '../../lib/aws/status-store.ts';
import { S3TranscriptStore } from '../../lib/aws/transcript-store.ts';
import { apiEvent, apiOnFreshResources, drainQueue, parseBody, validRequest } from './api-harness.ts';

let transcripts: S3TranscriptStore;
let status: S3StatusStore;
let id: string;

const api = apiOnFreshResources();

beforeAll(async () => {
  transcripts = new S3TranscriptStore(api.resources.clients.s3, api.resources.bucket);
  status = new S3StatusStore(api.resources.clients.s3, api.resources.bucket);
  const submitted = await api.handler(apiEvent({ method: 'POST', path: '/v1/messages', body: validRequest }));
  id = parseBody(submitted).id as string;
  await drainQueue(api.resources);
});

const get = (path: string, query?: Record<string, string>) =>
  api.handler(apiEvent({ method: 'GET', path, ...(query ? { query } : {}) }));

describe('GET /v1/messages/{id}', () => {
  it('returns the status record of a submitted message', async () => {
    const response = await get(`/v1/messages/${id}`);

    expect(response.statusCode).toBe(200);
    expect(parseBody(response)).toMatchObject({
      id,
      state: 'queued',
      from: 'alice@example.com',
      recipients: [
        { address: 'bob@example.org', kind: 'to', state: 'queued' },
        { address: 'carol@example.org', kind: 'cc', state: 'queued' },
        { address: 'dave@example.org', kind: 'bcc', state: 'queued' },
      ],
      transcripts: [],
    });
  });

  it('shows the worker’s progress: transcripts as links, without the internal lease', async () => {
    // Prepare: what a worker writes after an attempt.
    const current = (await status.get(id))!;
    const key = await transcripts.put(id, 1, 'S: 220 mx.example.org ESMTP\r\n');
    await status.update(
      {
        ...current.value,
        state: 'sending',
        attempts: 1,
        transcripts: [key],
        lease: { owner: 'worker-1', until: new Date(Date.now() + 60_000).toISOString() },
      },
      current.version,
    );

    // Act
    const body = parseBody(await get(`/v1/messages/${id}`));

    // Assess
    expect(body).toMatchObject({ state: 'sending', attempts: 1 });
    expect(body.transcripts).toEqual([{ attempt: 1, href: `/v1/messages/${id}/transcript?attempt=1` }]);
    expect(body).not.toHaveProperty('lease');
  });

  it('answers 404 for an unknown id', async () => {
    const response = await get('/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV');

    expect(response.statusCode).toBe(404);
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it.each(['not-an-id', '..%2Fidempotency%2Fx', '01arz3ndektsv4rrffq69g5fav'])(
    'answers 400 for the malformed id %s',
    async (bad) => {
      const response = await get(`/v1/messages/${bad}`);

      expect(response.statusCode).toBe(400);
      expect(parseBody(response)).toMatchObject({ error: 'bad_request' });
    },
  );
});

describe('GET /v1/messages/{id}/transcript', () => {
  it('returns the transcript of an attempt, and the latest one without ?attempt', async () => {
    // Prepare
    await transcripts.put(id, 1, 'attempt one\r\n');
    await transcripts.put(id, 2, 'attempt two\r\n');

    // Act
    const first = await get(`/v1/messages/${id}/transcript`, { attempt: '1' });
    const latest = await get(`/v1/messages/${id}/transcript`);

    // Assess
    expect(first.statusCode).toBe(200);
    expect(first.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8' });
    expect(first.body).toBe('attempt one\r\n');
    expect(latest.body).toBe('attempt two\r\n');
  });

  it('answers 404 for an attempt that has no transcript', async () => {
    const response = await get(`/v1/messages/${id}/transcript`, { attempt: '9' });

    expect(response.statusCode).toBe(404);
    expect(parseBody(response)).toMatchObject({ error: 'not_found' });
  });

  it('answers 404 for a message without transcripts', async () => {
    const response = await get('/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV/transcript');

    expect(response.statusCode).toBe(404);
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
