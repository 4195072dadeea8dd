// One-click unsubscribe (RFC 8058): each recipient's link carries a token, an HMAC over the message id and
// the recipient with the deployment's key, so the public route verifies it without a database look-up and
// nobody can make one for another address.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The RFC 8058 POST body, as a mailbox provider sends it. */
export const ONE_CLICK_BODY = 'List-Unsubscribe=One-Click';
const DOMAIN = 'smtpq-unsubscribe-v1';
const MAC_BYTES = 32;

const mac = (key: string, messageId: string, recipient: string): Buffer =>
  createHmac('sha256', key).update(`${DOMAIN}\n${messageId}\n${recipient}`, 'utf8').digest();

/** `<base64url(messageId \n recipient)>.<base64url(HMAC-SHA256)>`: URL-safe, no padding. */
export function unsubscribeToken(key: string, messageId: string, recipient: string): string {
  const payload = Buffer.from(`${messageId}\n${recipient}`, 'utf8').toString('base64url');
  return `${payload}.${mac(key, messageId, recipient).toString('base64url')}`;
}

/** The message and recipient a genuine token names; undefined for a forged, truncated or altered one. */
export function readUnsubscribeToken(
  key: string,
  token: string,
): { messageId: string; recipient: string } | undefined {
  const match = /^([A-Za-z0-9_-]{1,1400})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return undefined;
  const [messageId, recipient, ...rest] = Buffer.from(match[1]!, 'base64url').toString('utf8').split('\n');
  if (!messageId || !recipient || rest.length > 0) return undefined;
  const given = Buffer.from(match[2]!, 'base64url');
  if (given.length !== MAC_BYTES || !timingSafeEqual(given, mac(key, messageId, recipient))) return undefined;
  // Re-encoding must give the same text: a token is accepted in exactly one spelling.
  if (unsubscribeToken(key, messageId, recipient) !== token) return undefined;
  return { messageId, recipient };
}

/** The List-Unsubscribe link of one recipient: `<base>/v1/unsubscribe/<token>`. */
export function unsubscribeUrl(baseUrl: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/v1/unsubscribe/${token}`;
}
