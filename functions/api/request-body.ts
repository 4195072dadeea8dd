// Reads the JSON body of a payload 2.0 event: content type, base64 decoding, size bound, JSON parsing and a
// nesting bound, each failure a typed problem response rather than an exception.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { type ApiResponse, problem } from './responses.ts';

export type BodyResult = { ok: true; value: unknown; bytes: number } | { ok: false; response: ApiResponse };

/** Header lookup by name, case-insensitive: API Gateway lower-cases names, local emulators may not. */
export function header(event: APIGatewayProxyEventV2, name: string): string | undefined {
  const headers = event.headers ?? {};
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}

/** `application/json` or a `+json` type, in UTF-8 (the only encoding JSON allows on the wire, RFC 8259 §8.1). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const [type, ...params] = contentType.split(';').map((part) => part.trim().toLowerCase());
  if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type ?? '')) return false;
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  return charset === undefined || charset === 'utf-8' || charset === 'utf8';
}

/** Reads and parses the body; `maxBytes` bounds the raw JSON before it is parsed. */
export function readJsonBody(event: APIGatewayProxyEventV2, maxBytes: number): BodyResult {
  const contentType = header(event, 'content-type');
  if (!isJsonContentType(contentType)) {
    return fail(
      problem(
        'unsupported_media_type',
        `expected content-type application/json, got ${contentType ?? 'none'}`,
      ),
    );
  }
  const raw = event.body ?? '';
  const buffer = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (buffer.length === 0)
    return fail(problem('invalid_json', 'the request body is empty; expected a JSON object'));
  if (buffer.length > maxBytes) {
    return fail(
      problem('payload_too_large', `the request body is ${buffer.length} bytes; the limit is ${maxBytes}`),
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buffer);
  } catch {
    return fail(problem('invalid_json', 'the request body is not valid UTF-8'));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail(problem('invalid_json', `the request body is not valid JSON: ${(error as Error).message}`));
  }
  if (nestingDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return fail(problem('invalid_json', `the request body is nested deeper than ${MAX_JSON_DEPTH} levels`));
  }
  return { ok: true, value, bytes: buffer.length };
}

/**
 * Deepest nesting a body may have. A valid body needs at most 5 levels (a batch envelope, its messages, an
 * item, its attachments, one attachment); JSON.parse takes any depth, but the recursive walks after it
 * (validation, the request fingerprint) would overflow the stack on a few kilobytes of `{"a":{"a":…` and
 * answer 500.
 */
export const MAX_JSON_DEPTH = 32;

/** Nesting depth of a parsed JSON value (a scalar is 0), walked without recursion; stops counting past `limit`. */
export function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > limit) return deepest;
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return deepest;
}

function fail(response: ApiResponse): BodyResult {
  return { ok: false, response };
}
