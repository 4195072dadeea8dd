// The local stand-in for API Gateway (HTTP API, payload format 2.0): a node:http server that turns each request
// into an APIGatewayProxyEventV2, calls the API handler, and writes its result back — the same routes as the
// SAM template. Paths under /_inbox go to the dev inbox instead.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { localLambdaContext } from './lambda-context.ts';

export type ApiHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

/** Serves one request outside the API (the dev inbox); false when the path is not its own. */
export type SideHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

/**
 * The routes of infra/template.yaml, most specific first as API Gateway matches them; the catch-all sends any
 * other /v1 path or method to the handler (its JSON 404/405). Outside /v1 is API Gateway's own 404.
 */
const ROUTES: Array<{ method: string; pattern: RegExp; routeKey: string }> = [
  { method: 'POST', pattern: /^\/v1\/messages$/, routeKey: 'POST /v1/messages' },
  { method: 'GET', pattern: /^\/v1\/messages$/, routeKey: 'GET /v1/messages' },
  { method: 'POST', pattern: /^\/v1\/messages\/batch$/, routeKey: 'POST /v1/messages/batch' },
  {
    method: 'POST',
    pattern: /^\/v1\/messages\/(?<id>[^/]+)\/cancel$/,
    routeKey: 'POST /v1/messages/{id}/cancel',
  },
  { method: 'GET', pattern: /^\/v1\/messages\/(?<id>[^/]+)$/, routeKey: 'GET /v1/messages/{id}' },
  {
    method: 'GET',
    pattern: /^\/v1\/messages\/(?<id>[^/]+)\/transcript$/,
    routeKey: 'GET /v1/messages/{id}/transcript',
  },
  { method: 'ANY', pattern: /^\/v1\/(?<proxy>.+)$/, routeKey: 'ANY /v1/{proxy+}' },
];

/** A synchronous Lambda invocation carries at most 6 MB; API Gateway answers 413 above it. */
export const LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024;

/** Content types API Gateway passes as text; everything else arrives base64-encoded. */
function isTextual(contentType: string | undefined): boolean {
  if (!contentType) return true;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return (
    type.startsWith('text/') || /^application\/([a-z0-9.+-]+\+)?(json|xml|x-www-form-urlencoded)$/.test(type)
  );
}

export interface GatewayOptions {
  handler: ApiHandler;
  inbox?: SideHandler;
  region: string;
  /** Called after every API request that changed something (a POST), e.g. to refresh the inbox. */
  onApiWrite?: () => void;
  /** Host names besides localhost, 127.0.0.1 and [::1] that requests may name (SMTPQ_HOST, when it is one). */
  hostNames?: readonly string[];
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/**
 * DNS rebinding: a web page can point a name it owns at 127.0.0.1 and then talk to this server as if it were
 * its own origin — the local API has no auth. Such a request names the attacker's host, so only requests for
 * our own names (with our port) are served: 421 otherwise. And a page on another origin can send a simple
 * POST here without any CORS check: a request that changes something (anything but GET and HEAD) with an
 * Origin that is not ours is refused, 403. Clients that are not browsers (curl, the SDKs) send no Origin.
 */
function refusal(
  req: IncomingMessage,
  names: readonly string[],
): { status: number; message: string } | undefined {
  const port = req.socket.localPort;
  const ours = new Set(names.flatMap((name) => [`${name}:${port}`, ...(port === 80 ? [name] : [])]));
  const host = (req.headers.host ?? '').toLowerCase();
  if (!ours.has(host))
    return {
      status: 421,
      message: `refused: Host "${host.slice(0, 100)}" is not this server (use http://localhost:${port}); this guards against DNS rebinding`,
    };
  const method = (req.method ?? 'GET').toUpperCase();
  const origin = req.headers.origin;
  if (method !== 'GET' && method !== 'HEAD' && origin !== undefined) {
    let originHost = '';
    try {
      originHost = new URL(origin).host.toLowerCase();
    } catch {
      // "null" and other opaque origins: not ours
    }
    if (!ours.has(originHost))
      return {
        status: 403,
        message: `refused: a ${method} from the web page at ${origin.slice(0, 100)} (only pages of this server may send one)`,
      };
  }
  return undefined;
}

export class PortInUseError extends Error {
  readonly code = 'PORT_IN_USE';
}

export function createGateway(options: GatewayOptions): Server {
  return createServer((req, res) => {
    serve(req, res, options).catch((error: unknown) => {
      console.error('[gateway] request failed:', error);
      if (!res.headersSent) writeJson(res, 500, { message: 'Internal Server Error' });
      else res.destroy();
    });
  });
}

/** Listens on host:port (0 = any free port); a port already taken is a PortInUseError that says which. */
export function listen(server: Server, port: number, host: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(
          new PortInUseError(
            `${name}: port ${port} on ${host} is already in use (set another port, or 0 for any)`,
          ),
        );
      } else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

async function serve(req: IncomingMessage, res: ServerResponse, options: GatewayOptions): Promise<void> {
  const refused = refusal(req, [...LOOPBACK_NAMES, ...(options.hostNames ?? []).map((n) => n.toLowerCase())]);
  if (refused) {
    req.resume();
    res
      .writeHead(refused.status, { 'content-type': 'text/plain; charset=utf-8' })
      .end(`${refused.message}\n`);
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (options.inbox && (url.pathname === '/_inbox' || url.pathname.startsWith('/_inbox/'))) {
    if (await options.inbox(req, res, url)) return;
  }
  const method = (req.method ?? 'GET').toUpperCase();
  const route = ROUTES.find(
    (r) => (r.method === method || r.method === 'ANY') && r.pattern.test(url.pathname),
  );
  if (!route) {
    req.resume();
    writeJson(res, 404, { message: 'Not Found' });
    return;
  }
  const body = await readBody(req, LAMBDA_PAYLOAD_LIMIT);
  if (body === undefined) {
    writeJson(res, 413, { message: 'Request Entity Too Large' });
    return;
  }
  const event = toEvent(req, url, route.routeKey, route.pattern.exec(url.pathname)?.groups, body);
  const context = localLambdaContext('smtpq-api', 30_000, options.region);
  const result = await options.handler(event, context);
  writeResult(res, result);
  if (method !== 'GET') options.onApiWrite?.();
}

/** The request body, or undefined when it is larger than `limit` (the rest is drained, not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The payload 2.0 event API Gateway builds: lower-cased headers joined by commas, cookies apart. */
export function toEvent(
  req: IncomingMessage,
  url: URL,
  routeKey: string,
  pathParameters: Record<string, string> | undefined,
  body: Buffer,
): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [name, value] of Object.entries(req.headersDistinct)) {
    if (!value) continue;
    if (name === 'cookie') cookies = value.flatMap((v) => v.split(';').map((c) => c.trim()));
    else headers[name] = value.join(',');
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams)
    query[name] = name in query ? `${query[name]},${value}` : value;
  const textual = isTextual(headers['content-type']);
  const now = new Date();
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    ...(cookies ? { cookies } : {}),
    headers,
    ...(url.search ? { queryStringParameters: query } : {}),
    ...(pathParameters ? { pathParameters: decodeParams(pathParameters) } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0]!,
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: textual ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !textual,
  };
}

function decodeParams(params: Record<string, string>): Record<string, string> {
  const decoded: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    try {
      decoded[name] = decodeURIComponent(value);
    } catch {
      decoded[name] = value;
    }
  }
  return decoded;
}

/** Writes a handler result the way API Gateway does, including its inference for a bare string or object. */
export function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2): void {
  if (typeof result === 'string') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(result);
    return;
  }
  if (result === null || typeof result !== 'object' || !('statusCode' in result)) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  if (result.cookies?.length) headers['set-cookie'] = result.cookies;
  const body = result.body === undefined ? '' : result.body;
  const bytes = result.isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  res.writeHead(result.statusCode ?? 200, headers).end(bytes);
}

export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
