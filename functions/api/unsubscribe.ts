// POST /v1/unsubscribe/{token}: RFC 8058 one-click unsubscribe, the one route without IAM auth (mailbox
// providers call it without credentials; the template throttles it). A genuine token puts its recipient on
// the suppression list (source `unsubscribe`), idempotently, and answers 200 with an empty body; a forged,
// truncated or altered one answers 400 and changes nothing. No database look-up verifies a token.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { ONE_CLICK_BODY, readUnsubscribeToken } from '../../lib/delivery/unsubscribe.ts';
import type { ApiDeps } from './deps.ts';
import { header } from './request-body.ts';
import { type ApiResponse, problem } from './responses.ts';

export async function handleUnsubscribe(
  token: string,
  event: APIGatewayProxyEventV2,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const bodyProblem = oneClickBodyProblem(event);
  if (bodyProblem) return problem('bad_request', bodyProblem);
  if (!deps.unsubscribeKey) return problem('not_found', 'unsubscribe links are not configured here');
  const named = readUnsubscribeToken(await deps.unsubscribeKey(), token);
  if (!named) return problem('bad_request', 'not a valid unsubscribe link');
  await deps.suppressions.add({
    address: named.recipient,
    source: 'unsubscribe',
    reason: 'one-click unsubscribe (RFC 8058)',
    messageId: named.messageId,
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
  });
  deps.logger.info('unsubscribed', { messageId: named.messageId });
  return { statusCode: 200, headers: { 'cache-control': 'no-store' }, body: '' };
}

/** RFC 8058 §3.1: `List-Unsubscribe=One-Click` as form data (urlencoded or multipart); an empty body is
 *  taken too (some clients send none). Anything else is not a one-click request. */
function oneClickBodyProblem(event: APIGatewayProxyEventV2): string | undefined {
  const raw = event.body ?? '';
  const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (text.trim() === '') return undefined;
  const type = (header(event, 'content-type') ?? '').toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return new URLSearchParams(text).get('List-Unsubscribe') === 'One-Click'
      ? undefined
      : `the body must be ${ONE_CLICK_BODY}`;
  }
  if (type.startsWith('multipart/form-data'))
    return /name="List-Unsubscribe"\r?\n\r?\nOne-Click/.test(text)
      ? undefined
      : `the form must hold ${ONE_CLICK_BODY}`;
  return `expected application/x-www-form-urlencoded with ${ONE_CLICK_BODY}`;
}
