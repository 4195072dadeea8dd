// HTTP responses of the API. Every error is a JSON body `{ error, message, ... }` with a stable `error` code,
// so clients branch on the code, never on the text.
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export type ApiResponse = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

/** Stable error codes; each maps to one HTTP status. */
export const ERROR_STATUS = {
  bad_request: 400,
  invalid_json: 400,
  validation_failed: 400,
  invalid_idempotency_key: 400,
  sender_not_allowed: 403,
  not_found: 404,
  method_not_allowed: 405,
  idempotency_key_in_use: 409,
  not_cancellable: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface Issue {
  path: string;
  message: string;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** Plain text (a transcript: a relay's replies, never to be sniffed into HTML by a browser). */
export function text(statusCode: number, body: string): ApiResponse {
  return {
    statusCode,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' },
    body,
  };
}

export interface ErrorExtras {
  issues?: Issue[];
  /** The message's state, when it is why the request was refused (not_cancellable). */
  state?: string;
  requestId?: string;
  headers?: Record<string, string>;
}

export function problem(code: ErrorCode, message: string, extras: ErrorExtras = {}): ApiResponse {
  const { headers, ...fields } = extras;
  return json(ERROR_STATUS[code], { error: code, message, ...fields }, headers);
}
