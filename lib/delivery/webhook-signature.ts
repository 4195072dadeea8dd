// Webhook signing as the Standard Webhooks specification says (standardwebhooks.com), through its reference
// implementation (the `standardwebhooks` package): `webhook-id` (the event id), `webhook-timestamp` (Unix
// seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed with the
// bytes of the `whsec_<base64>` secret). verifyWebhook is what a receiver calls; `smtpq webhook verify` too.
import { randomBytes } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { SmtpqEvent } from './events.ts';

export { WebhookVerificationError };

/** The body a webhook receives: the event without its id (the id is the `webhook-id` header). */
export interface WebhookPayload {
  type: SmtpqEvent['type'];
  timestamp: string;
  data: SmtpqEvent['data'];
}

export interface SignedWebhook {
  headers: { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string };
  body: string;
}

/** A new signing secret: `whsec_` + 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function signWebhook(secret: string, event: SmtpqEvent, now: Date = new Date()): SignedWebhook {
  const payload: WebhookPayload = { type: event.type, timestamp: event.timestamp, data: event.data };
  const body = JSON.stringify(payload);
  // The spec signs whole seconds: the header and the signed content must agree.
  const at = new Date(Math.floor(now.getTime() / 1000) * 1000);
  return {
    headers: {
      'webhook-id': event.id,
      'webhook-timestamp': String(at.getTime() / 1000),
      'webhook-signature': new Webhook(secret).sign(event.id, at, body),
    },
    body,
  };
}

/**
 * Checks a received webhook: the signature over the exact body bytes, and a timestamp within 5 minutes of
 * now (older is a replay, newer a clock problem). Returns the payload; throws WebhookVerificationError.
 * `headers` may be Node's IncomingHttpHeaders (lower-case names) or any record of header names.
 */
export function verifyWebhook(
  secret: string,
  body: string | Uint8Array,
  headers: Record<string, string | string[] | undefined>,
): WebhookPayload {
  const wanted = ['webhook-id', 'webhook-timestamp', 'webhook-signature'];
  const found: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (wanted.includes(lower) && value !== undefined)
      found[lower] = Array.isArray(value) ? value.join(' ') : value;
  }
  return new Webhook(secret).verify(body, found) as WebhookPayload;
}
