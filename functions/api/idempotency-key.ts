// The Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key-header), checked before anything else.
// How long a key holds (24 h) is the store's business: lib/aws/idempotency-store.ts.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { header } from './request-body.ts';

export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

// Printable ASCII only: the key is logged and stored; no control characters, no CR/LF.
const KEY_PATTERN = /^[\x20-\x7e]+$/;

export type KeyResult = { ok: true; key: string | undefined } | { ok: false; message: string };

export function readIdempotencyKey(event: APIGatewayProxyEventV2): KeyResult {
  const raw = header(event, 'idempotency-key');
  if (raw === undefined) return { ok: true, key: undefined };
  // The IETF draft sends the key as a structured-field string ("..."); Stripe-style clients send it bare.
  const key = /^".*"$/.test(raw) ? raw.slice(1, -1) : raw;
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    return { ok: false, message: `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters` };
  }
  if (!KEY_PATTERN.test(key)) return { ok: false, message: 'Idempotency-Key must be printable ASCII' };
  return { ok: true, key };
}
