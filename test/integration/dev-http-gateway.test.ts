// The local API Gateway: real HTTP requests in, payload 2.0 events out (as API Gateway builds them), and the
// handler's result written back — including API Gateway's own 404 and 413.
import type { Server } from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createGateway,
  LAMBDA_PAYLOAD_LIMIT,
  listen,
  PortInUseError,
} from '../../scripts/local/http-gateway.ts';

const events: APIGatewayProxyEventV2[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createGateway({
    region: 'eu-west-1',
    handler: async (event): Promise<APIGatewayProxyStructuredResultV2> => {
      events.push(event);
      if (event.rawPath.endsWith('/transcript')) {
        return {
          statusCode: 200,
          headers: { 'Content-Type': 'text/plain' },
          body: Buffer.from('bin\x00ary').toString('base64'),
          isBase64Encoded: true,
          cookies: ['a=1', 'b=2'],
        };
      }
      return { statusCode: 202, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };
    },
  });
  base = `http://127.0.0.1:${await listen(server, 0, '127.0.0.1', 'test')}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('local API Gateway', () => {
  it('maps a JSON POST to a payload 2.0 event with its route key, lower-cased headers and query', async () => {
    const response = await fetch(`${base}/v1/messages?x=1&x=2&y=%20z`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k-1', Cookie: 'c1=v1; c2=v2' },
      body: '{"from":"é@example.com"}',
    });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ ok: true });
    const event = events.at(-1)!;
    expect(event).toMatchObject({
      version: '2.0',
      routeKey: 'POST /v1/messages',
      rawPath: '/v1/messages',
      rawQueryString: 'x=1&x=2&y=%20z',
      queryStringParameters: { x: '1,2', y: ' z' },
      cookies: ['c1=v1', 'c2=v2'],
      body: '{"from":"é@example.com"}',
      isBase64Encoded: false,
      requestContext: {
        http: { method: 'POST', path: '/v1/messages' },
        stage: '$default',
        routeKey: 'POST /v1/messages',
      },
    });
    expect(event.headers['idempotency-key']).toBe('k-1');
    expect(event.headers.cookie).toBeUndefined();
  });

  it('passes path parameters, base64-encodes binary bodies, and writes base64 results and cookies back', async () => {
    const response = await fetch(`${base}/v1/messages/abc%2D1/transcript`);
    expect(Buffer.from(await response.arrayBuffer()).toString('latin1')).toBe('bin\x00ary');
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(events.at(-1)).toMatchObject({
      routeKey: 'GET /v1/messages/{id}/transcript',
      pathParameters: { id: 'abc-1' },
    });

    await fetch(`${base}/v1/messages/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0, 255, 1]),
    });
    expect(events.at(-1)).toMatchObject({
      isBase64Encoded: true,
      body: Buffer.from([0, 255, 1]).toString('base64'),
    });
  });

  it('sends any other /v1 path or method to the handler through the catch-all route', async () => {
    await fetch(`${base}/v1/messages/x`, { method: 'DELETE' });
    expect(events.at(-1)).toMatchObject({
      routeKey: 'ANY /v1/{proxy+}',
      pathParameters: { proxy: 'messages/x' },
    });
  });

  it('answers paths outside /v1 with API Gateway 404, without calling the handler', async () => {
    const before = events.length;
    for (const path of ['/', '/v2/messages', '/v1']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ message: 'Not Found' });
    }
    expect(events.length).toBe(before);
  });

  it('refuses a body over the Lambda payload limit with 413', async () => {
    const before = events.length;
    const response = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(LAMBDA_PAYLOAD_LIMIT + 1),
    });
    expect(response.status).toBe(413);
    expect(events.length).toBe(before);
  });

  it('says which port is taken', async () => {
    const port = Number(new URL(base).port);
    const other = createGateway({ region: 'eu-west-1', handler: async () => ({ statusCode: 200 }) });
    await expect(listen(other, port, '127.0.0.1', 'API (PORT)')).rejects.toThrow(PortInUseError);
    await expect(listen(other, port, '127.0.0.1', 'API (PORT)')).rejects.toThrow(
      `API (PORT): port ${port} on 127.0.0.1 is already in use`,
    );
  });
});

describe('DNS rebinding and cross-site requests', () => {
  /** A raw request with the headers as given (fetch would not let a test set Host). */
  async function raw(method: string, path: string, headers: Record<string, string>) {
    const { request } = await import('node:http');
    const port = Number(new URL(base).port);
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(method === 'POST' ? '{}' : undefined);
    });
  }
  const port = () => new URL(base).port;

  it.each(['localhost', '127.0.0.1', '[::1]'])('serves Host %s with its port', async (name) => {
    const before = events.length;
    expect((await raw('GET', '/v1/messages/x', { host: `${name}:${port()}` })).status).toBe(202);
    expect(events.length).toBe(before + 1);
  });

  it.each(['attacker.example', `attacker.example:${'PORT'}`, 'localhost:1', '127.0.0.1.nip.io'])(
    'refuses Host %s with 421 and a one-line reason, before the handler or the inbox',
    async (name) => {
      const before = events.length;
      const response = await raw('GET', '/_inbox/api/messages', { host: name.replace('PORT', port()) });
      expect(response.status).toBe(421);
      expect(response.body).toMatch(/^refused: Host .* DNS rebinding\n$/);
      expect(events.length).toBe(before);
    },
  );

  it("refuses a POST from another origin's page with 403, and takes one from its own or from no page", async () => {
    const host = `localhost:${port()}`;
    const before = events.length;
    const foreign = await raw('POST', '/v1/messages', {
      host,
      origin: 'https://evil.example',
      'content-type': 'application/json',
    });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatch(/^refused: a POST from the web page at https:\/\/evil\.example/);
    expect((await raw('POST', '/v1/messages', { host, origin: 'null' })).status).toBe(403);
    expect(events.length).toBe(before);
    expect((await raw('POST', '/v1/messages', { host, origin: `http://${host}` })).status).toBe(202);
    expect((await raw('POST', '/v1/messages', { host })).status).toBe(202);
    // A GET is a read: the browser keeps its answer from another origin's page (no CORS headers).
    expect((await raw('GET', '/v1/messages/x', { host, origin: 'https://evil.example' })).status).toBe(202);
  });
});
