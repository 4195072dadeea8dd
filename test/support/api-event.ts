// API Gateway events for the tests, in a module without vitest, so a child process can build them too
// (test/support/api-killed-child.ts).
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

export interface EventOptions {
  method?: string;
  path: string;
  body?: unknown;
  /** Raw body text; wins over `body`. */
  rawBody?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  base64?: boolean;
  /** The IAM caller API Gateway authenticated (requestContext.authorizer.iam), as a user or role ARN. */
  caller?: string;
}

/** A payload format 2.0 event as API Gateway sends it (header names lower-cased). */
export function apiEvent(options: EventOptions): APIGatewayProxyEventV2 {
  const method = options.method ?? 'GET';
  const text = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: options.path,
    rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
    headers,
    ...(options.query ? { queryStringParameters: options.query } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path: options.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
      ...(options.caller
        ? {
            authorizer: {
              iam: {
                accessKey: 'AKIAEXAMPLEKEY',
                accountId: options.caller.split(':')[4] ?? '123456789012',
                callerId: 'AIDAEXAMPLE',
                principalOrgId: null,
                userArn: options.caller,
                userId: 'AIDAEXAMPLE',
                cognitoIdentity: null,
              },
            },
          }
        : {}),
    },
    isBase64Encoded: options.base64 ?? false,
    ...(text === undefined ? {} : { body: options.base64 ? Buffer.from(text).toString('base64') : text }),
  };
}
