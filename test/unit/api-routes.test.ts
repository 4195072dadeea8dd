// Pure mapping of the API: routes, paths, response shapes, ids, header and query parsing.
import { describe, expect, it } from 'vitest';
import { readEnvelope } from '../../functions/api/batch.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { canonicalJson, requestFingerprint } from '../../functions/api/fingerprint.ts';
import { readIdempotencyKey } from '../../functions/api/idempotency-key.ts';
import { isMessageId, newMessageId } from '../../functions/api/ids.ts';
import { isJsonContentType, readJsonBody } from '../../functions/api/request-body.ts';
import { ERROR_STATUS, problem } from '../../functions/api/responses.ts';
import { matchRoute, normalizePath } from '../../functions/api/routes.ts';
import { statusView } from '../../functions/api/status.ts';
import { handleTranscript, parseAttempt } from '../../functions/api/transcript.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord, TranscriptRef } from '../../lib/delivery/ports.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import { apiEvent } from '../integration/api-harness.ts';

const ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

describe('matchRoute', () => {
  it.each([
    ['POST', '/v1/messages', { name: 'submit' }],
    ['GET', '/v1/messages', { name: 'list' }],
    ['POST', '/v1/messages/batch', { name: 'batch' }],
    ['POST', `/v1/messages/${ID}/cancel`, { name: 'cancel', id: ID }],
    ['GET', `/v1/messages/${ID}`, { name: 'status', id: ID }],
    ['GET', `/v1/messages/${ID}/transcript`, { name: 'transcript', id: ID }],
    ['get', `/v1/messages/${ID}`, { name: 'status', id: ID }],
  ])('%s %s is %o', (method, path, route) => {
    expect(matchRoute(method, path)).toEqual({ kind: 'route', route });
  });

  it.each([
    ['DELETE', '/v1/messages', ['POST', 'GET']],
    ['GET', '/v1/messages/batch', ['POST']],
    ['GET', `/v1/messages/${ID}/cancel`, ['POST']],
    ['DELETE', `/v1/messages/${ID}`, ['GET']],
    ['POST', `/v1/messages/${ID}/transcript`, ['GET']],
  ])('%s %s is 405 allowing %o', (method, path, allow) => {
    expect(matchRoute(method, path)).toEqual({ kind: 'method_not_allowed', allow });
  });

  it.each(['/', '/v1', '/v1/message', `/v1/messages/${ID}/transcript/1`, '/v2/messages'])(
    '%s is 404',
    (path) => {
      expect(matchRoute('GET', path)).toEqual({ kind: 'not_found' });
    },
  );

  it('decodes a %-escaped id so that the id check sees what S3 would', () => {
    expect(matchRoute('GET', '/v1/messages/a%2Fb')).toEqual({
      kind: 'route',
      route: { name: 'status', id: 'a/b' },
    });
    expect(matchRoute('GET', '/v1/messages/%E0%A4%A')).toMatchObject({ route: { id: '%E0%A4%A' } });
  });
});

describe('normalizePath', () => {
  it('strips a named stage and a trailing slash, keeps $default paths', () => {
    expect(normalizePath('/prod/v1/messages', 'prod')).toBe('/v1/messages');
    expect(normalizePath('/v1/messages/', '$default')).toBe('/v1/messages');
    expect(normalizePath('/v1/messages', 'prod')).toBe('/v1/messages');
    expect(normalizePath('/', undefined)).toBe('/');
  });
});

describe('responses', () => {
  it('maps every error code to its status with a JSON body', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      const response = problem(code as keyof typeof ERROR_STATUS, 'why');
      expect(response.statusCode).toBe(status);
      expect(response.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' });
      expect(JSON.parse(response.body)).toEqual({ error: code, message: 'why' });
    }
  });

  it('puts extras in the body and headers in the headers', () => {
    const response = problem('method_not_allowed', 'no', { headers: { allow: 'GET' }, requestId: 'r1' });
    expect(response.headers).toMatchObject({ allow: 'GET' });
    expect(JSON.parse(response.body)).toEqual({
      error: 'method_not_allowed',
      message: 'no',
      requestId: 'r1',
    });
  });
});

describe('message ids', () => {
  it('are 26 Crockford base32 characters that sort by time', () => {
    const a = newMessageId(1_700_000_000_000);
    const b = newMessageId(1_700_000_000_001);
    expect(isMessageId(a)).toBe(true);
    expect(a < b).toBe(true);
    // 1_700_000_000_000 ms in Crockford base32, computed independently.
    expect(a.slice(0, 10)).toBe('01HF7YAT00');
  });

  it.each(['', ID.toLowerCase(), `${ID}0`, 'ILOU0000000000000000000000', '../messages/x'])(
    'rejects %j',
    (id) => {
      expect(isMessageId(id)).toBe(false);
    },
  );
});

describe('request body', () => {
  it.each([
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON; Charset="UTF-8"', true],
    ['application/merge-patch+json', true],
    ['application/json; charset=latin1', false],
    ['text/json', false],
    ['text/plain', false],
    [undefined, false],
  ])('%s is JSON: %s', (type, expected) => {
    expect(isJsonContentType(type)).toBe(expected);
  });

  it('decodes base64 bodies and rejects invalid UTF-8, empty and oversize bodies with typed answers', () => {
    const ok = readJsonBody(apiEvent({ method: 'POST', path: '/', body: { a: 1 }, base64: true }), 100);
    expect(ok).toEqual({ ok: true, value: { a: 1 }, bytes: 7 });

    const latin1 = apiEvent({ method: 'POST', path: '/', body: {} });
    latin1.body = Buffer.from([0x7b, 0xff, 0x7d]).toString('base64');
    latin1.isBase64Encoded = true;
    expect(bodyError(readJsonBody(latin1, 100))).toBe('invalid_json');

    expect(
      bodyError(readJsonBody(apiEvent({ method: 'POST', path: '/', rawBody: '', headers: json }), 100)),
    ).toBe('invalid_json');
    expect(bodyError(readJsonBody(apiEvent({ method: 'POST', path: '/', body: 'x'.repeat(200) }), 100))).toBe(
      'payload_too_large',
    );
  });

  it('finds the content type whatever the header name case', () => {
    const event = apiEvent({ method: 'POST', path: '/', rawBody: '{}' });
    event.headers = { 'Content-Type': 'application/json' };
    expect(readJsonBody(event, 100)).toMatchObject({ ok: true });
  });
});

const json = { 'content-type': 'application/json' };

function bodyError(result: ReturnType<typeof readJsonBody>): string | undefined {
  return result.ok ? undefined : (JSON.parse(result.response.body) as { error: string }).error;
}

describe('Idempotency-Key', () => {
  const key = (value?: string) =>
    readIdempotencyKey(
      apiEvent({ path: '/', ...(value === undefined ? {} : { headers: { 'Idempotency-Key': value } }) }),
    );

  it('is optional, accepts up to 256 printable characters, unwraps a structured-field string', () => {
    expect(key()).toEqual({ ok: true, key: undefined });
    expect(key('k'.repeat(256))).toEqual({ ok: true, key: 'k'.repeat(256) });
    expect(key('"8e03978e-40d5"')).toEqual({ ok: true, key: '8e03978e-40d5' });
  });

  it.each(['', 'k'.repeat(257), 'a\r\nb', 'ü', 'a\tb'])('rejects %j', (value) => {
    expect(key(value).ok).toBe(false);
  });
});

describe('fingerprint', () => {
  it('ignores key order and undefined fields, not values or array order', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }], u: undefined })).toBe(
      '{"a":[2,{"c":4,"d":3}],"b":1}',
    );
    expect(requestFingerprint({ a: 1, b: 2 })).toBe(requestFingerprint({ b: 2, a: 1 }));
    expect(requestFingerprint({ a: [1, 2] })).not.toBe(requestFingerprint({ a: [2, 1] }));
    expect(requestFingerprint({ a: '1' })).not.toBe(requestFingerprint({ a: 1 }));
  });
});

describe('parseAttempt', () => {
  it('is undefined when absent, the number when a positive integer, null otherwise', () => {
    expect(parseAttempt(undefined)).toBeUndefined();
    expect(parseAttempt('3')).toBe(3);
    for (const bad of ['0', '-1', '01', '1.0', 'x', '', '9999999']) expect(parseAttempt(bad)).toBeNull();
  });
});

describe('batch envelope', () => {
  it('accepts 1 to 100 messages and names the field of each problem', () => {
    expect(readEnvelope({ messages: [{}] })).toEqual({ ok: true, messages: [{}] });
    expect(readEnvelope({ messages: Array(100).fill({}) }).ok).toBe(true);
    expect(readEnvelope({ messages: Array(101).fill({}) })).toMatchObject({
      ok: false,
      issues: [{ path: 'messages' }],
    });
    expect(readEnvelope({ messages: {} })).toMatchObject({ ok: false, issues: [{ path: 'messages' }] });
    expect(readEnvelope({ messages: [{}], extra: 1 })).toMatchObject({
      ok: false,
      issues: [{ path: 'extra' }],
    });
    expect(readEnvelope(null)).toMatchObject({ ok: false, issues: [{ path: '' }] });
  });
});

describe('acceptRequest', () => {
  const request = validateSendRequest({
    from: 'a@example.com',
    to: 'b@example.org, c@example.org',
    bcc: ['d@example.org'],
    text: 'x',
    tags: { campaign: 'c1' },
  });
  if (!request.ok) throw new Error('fixture invalid');
  const now = new Date('2026-11-28T10:00:00.000Z');

  it('fixes Message-ID and Date on the stored request and lists every recipient with its kind', () => {
    const { stored, record } = newRecord(request.value, ID, now, { messageIdDomain: 'm.test' });
    expect(stored.messageId).toBe(`<${ID}@m.test>`);
    expect(stored.date).toBe('2026-11-28T10:00:00.000Z');
    expect(record).toMatchObject({
      id: ID,
      state: 'queued',
      attempts: 0,
      from: 'a@example.com',
      tags: { campaign: 'c1' },
    });
    expect(record.recipients.map((r) => `${r.kind}:${r.address}`)).toEqual([
      'to:b@example.org',
      'to:c@example.org',
      'bcc:d@example.org',
    ]);
  });

  it('keeps a Message-ID and Date the caller gave', () => {
    const own = { ...request.value, messageId: '<mine@example.com>', date: '2026-01-01T00:00:00Z' };
    const { stored, record } = newRecord(own, ID, now, { messageIdDomain: 'm.test' });
    expect(stored.messageId).toBe('<mine@example.com>');
    expect(stored.date).toBe('2026-01-01T00:00:00Z');
    expect(record.messageId).toBe('<mine@example.com>');
  });
});

const part = (attempt: number, key: string, lines: [number, number][] = [[0, 3]]): TranscriptRef => ({
  attempt,
  key,
  lines,
});

const statusRecord = (transcripts: TranscriptRef[]): StatusRecord => ({
  id: ID,
  state: 'deferred',
  createdAt: 't',
  updatedAt: 't',
  messageId: '<x@y>',
  from: 'a@example.com',
  recipients: [],
  attempts: 2,
  transcripts,
  lease: { owner: 'w', until: 't' },
  requestFingerprint: 'abc',
});

describe('statusView', () => {
  it('drops the lease and the body hash, and gives one transcript link per attempt', () => {
    const record = statusRecord([
      part(1, 'transcripts/2026-11-28/a-1.log'),
      // Attempt 2 needed a second connection: two parts, one link.
      part(2, 'transcripts/2026-11-28/b-1.log'),
      part(2, 'transcripts/2026-11-28/b-2.log'),
    ]);
    const view = statusView(record);
    expect(view).not.toHaveProperty('lease');
    expect(view).not.toHaveProperty('requestFingerprint');
    expect(view.transcripts).toEqual([
      { attempt: 1, href: `/v1/messages/${ID}/transcript?attempt=1` },
      { attempt: 2, href: `/v1/messages/${ID}/transcript?attempt=2` },
    ]);
  });

  it('shows no links, and no keys or line runs, before the first attempt', () => {
    const view = statusView(statusRecord([]));
    expect(view.transcripts).toEqual([]);
    expect(JSON.stringify(statusView(statusRecord([part(1, 'transcripts/k-1.log')])))).not.toContain(
      'k-1.log',
    );
  });
});

describe('handleTranscript', () => {
  /** The transcript route's two ports: the ledger entry, and the parts of the connections' transcripts. */
  function deps(record: StatusRecord | undefined, stored: Record<string, string>) {
    const asked: TranscriptRef[] = [];
    const api = {
      config: { readAllPrincipals: [] },
      status: { get: async () => (record ? { value: record, version: '1' } : undefined) },
      transcripts: {
        part: async (ref: TranscriptRef) => {
          asked.push(ref);
          return stored[ref.key];
        },
      },
    } as unknown as ApiDeps;
    return { api, asked };
  }
  const record = statusRecord([
    part(1, 'transcripts/a-1.log'),
    part(2, 'transcripts/b-1.log'),
    part(2, 'transcripts/b-2.log'),
  ]);
  const stored = {
    'transcripts/a-1.log': 'attempt 1\n',
    'transcripts/b-1.log': 'attempt 2, first connection\n',
    'transcripts/b-2.log': 'attempt 2, second connection\n',
  };

  it('answers the latest attempt by default: its parts of every connection it used, in order', async () => {
    const { api } = deps(record, stored);

    const response = await handleTranscript(ID, {}, undefined, api);

    expect(response.statusCode).toBe(200);
    expect(response.headers).toMatchObject({
      'content-type': 'text/plain; charset=utf-8',
      'x-content-type-options': 'nosniff',
    });
    expect(response.body).toBe('attempt 2, first connection\nattempt 2, second connection\n');
  });

  it('answers the attempt asked for, reading only its parts', async () => {
    const { api, asked } = deps(record, stored);

    const response = await handleTranscript(ID, { attempt: '1' }, undefined, api);

    expect(response.body).toBe('attempt 1\n');
    expect(asked).toEqual([part(1, 'transcripts/a-1.log')]);
  });

  it('serves the parts still stored when one of them is gone', async () => {
    const { api } = deps(record, { 'transcripts/b-2.log': 'attempt 2, second connection\n' });

    const response = await handleTranscript(ID, {}, undefined, api);

    expect(response).toMatchObject({ statusCode: 200, body: 'attempt 2, second connection\n' });
  });

  it.each([
    ['an attempt that never ran', record, stored, { attempt: '3' }, /no transcript for attempt 3 of message/],
    ['a message not attempted yet', statusRecord([]), stored, {}, /no transcript of message/],
    ['an attempt whose parts are all gone', record, {}, { attempt: '1' }, /no transcript for attempt 1/],
    ['an unknown message', undefined, stored, {}, /no message with id/],
  ])('is 404 for %s', async (_what, found, objects, query, message) => {
    const { api } = deps(found, objects);

    const response = await handleTranscript(ID, query, undefined, api);

    expect(response.statusCode).toBe(404);
    expect(JSON.parse(response.body)).toMatchObject({
      error: 'not_found',
      message: expect.stringMatching(message),
    });
  });

  it('is 400 for a malformed id or attempt, without reading the ledger', async () => {
    const { api, asked } = deps(record, stored);

    expect((await handleTranscript('nope', {}, undefined, api)).statusCode).toBe(400);
    expect((await handleTranscript(ID, { attempt: '0' }, undefined, api)).statusCode).toBe(400);
    expect(asked).toEqual([]);
  });
});
