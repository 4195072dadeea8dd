// GET /v1/messages/{id}/transcript[?attempt=N]: one attempt's SMTP transcript as text (the latest by default):
// its part of the transcript of the connection that carried it — the connection's own lines (greeting, EHLO,
// TLS, AUTH) and this message's, not the other messages' that were pipelined on the same connection.
import type { Caller } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { isMessageId } from './ids.ts';
import { type ApiResponse, problem, text } from './responses.ts';
import { invalidId, readable } from './status.ts';

export async function handleTranscript(
  id: string,
  query: Record<string, string | undefined>,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  if (!isMessageId(id)) return invalidId(id);
  const attempt = parseAttempt(query.attempt);
  if (attempt === null) return problem('bad_request', 'attempt must be a positive integer');
  const found = await readable(id, caller, deps);
  if (!found) return problem('not_found', `no message with id ${id}`);
  const refs = found.value.transcripts;
  const wanted = attempt ?? Math.max(0, ...refs.map((t) => t.attempt));
  const parts = await Promise.all(
    refs.filter((t) => t.attempt === wanted).map((ref) => deps.transcripts.part(ref)),
  );
  const stored = parts.filter((p): p is string => p !== undefined);
  if (stored.length === 0) {
    const which = attempt === undefined ? '' : ` for attempt ${attempt}`;
    return problem('not_found', `no transcript${which} of message ${id}`);
  }
  return text(200, stored.join(''));
}

/** undefined: not given (the latest attempt); null: given but not a positive integer. */
export function parseAttempt(value: string | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,5}$/.test(value)) return null;
  return Number(value);
}
