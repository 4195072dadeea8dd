// The CLI's API client against a real local HTTP server: SigV4 signatures that verify for exactly the request
// the server received, plain requests for the local dev API, and the API's errors as typed values.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from '../../scripts/cli/api-client.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const seen: Seen[] = [];
let reply: { status: number; body: string } = { status: 202, body: '{"id":"m1","status":"queued"}' };
let server: Server;
let base: string;
const credentials = { accessKeyId: 'AKIDSMTPQTEST', secretAccessKey: 'smtpq-test-secret-key' };

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID = credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = credentials.secretAccessKey;
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Signs the request the server saw, with the same date, and returns the Authorization it should carry. */
async function expectedAuthorization(request: Seen, region: string): Promise<string> {
  const url = new URL(request.url, base);
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(String(request.headers.authorization))![1]!.split(';');
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, String(request.headers[name])]));
  const amzDate = String(request.headers['x-amz-date']);
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const signer = new SignatureV4({ service: 'execute-api', region, credentials, sha256: Sha256 });
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      ...(request.body ? { body: request.body } : {}),
    },
    { signingDate },
  );
  return signed.headers.authorization!;
}

describe('ApiClient', () => {
  it('signs requests with SigV4 for execute-api, and the signature matches what the server received', async () => {
    const client = new ApiClient({ api: base, sigv4: true, region: 'eu-west-1' });
    expect(await client.submit({ from: 'a@example.com', to: ['b@example.com'] }, 'key-1')).toEqual({
      id: 'm1',
      status: 'queued',
    });
    const request = seen.at(-1)!;
    expect(request.headers['idempotency-key']).toBe('key-1');
    expect(request.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDSMTPQTEST\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*idempotency-key[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(request.headers.authorization).toBe(await expectedAuthorization(request, 'eu-west-1'));

    reply = { status: 200, body: 'transcript text' };
    await client.transcript('m1', 2);
    const get = seen.at(-1)!;
    expect(get.url).toBe('/v1/messages/m1/transcript?attempt=2');
    expect(get.headers.authorization).toBe(await expectedAuthorization(get, 'eu-west-1'));
  });

  it('sends plain requests to the local dev API', async () => {
    reply = { status: 202, body: '{"id":"m2","status":"queued"}' };
    await new ApiClient({ api: base }).submit({ from: 'a@example.com', to: ['b@example.com'] });
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();
    expect(seen.at(-1)!.headers['idempotency-key']).toBeUndefined();
  });

  it('keeps the path of a base URL (an API mapped under a prefix)', async () => {
    reply = { status: 200, body: '{"id":"m3"}' };
    await new ApiClient({ api: `${base}/smtpq/` }).status('m3');
    expect(seen.at(-1)!.url).toBe('/smtpq/v1/messages/m3');
  });

  it('turns API errors into typed errors with their code and issues; 5xx and 429 are transient', async () => {
    const client = new ApiClient({ api: base });
    reply = {
      status: 400,
      body: JSON.stringify({
        error: 'validation_failed',
        message: 'bad',
        issues: [{ path: 'to', message: 'missing' }],
      }),
    };
    const error = await client.submit({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: 'validation_failed', transient: false });
    expect((error as ApiError).describe()).toBe('HTTP 400 validation_failed: bad (to: missing)');
    reply = { status: 503, body: 'Service Unavailable' };
    expect(await client.status('x').catch((e: ApiError) => e.transient)).toBe(true);
  });

  it('refuses a deployed API over plain http, and tells which server is not there', async () => {
    expect(() => new ApiClient({ api: 'http://abc.execute-api.eu-west-1.amazonaws.com' })).toThrow(/https/);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await new ApiClient({ api: `http://127.0.0.1:${port}` })
      .status('x')
      .catch((e: ApiError) => e);
    expect(error).toMatchObject({ code: 'network_error', transient: true });
    expect((error as ApiError).message).toContain(`nothing listens at http://127.0.0.1:${port}`);
  });
});
