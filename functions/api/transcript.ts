// GET /v1/messages/{id}/transcript[?attempt=N]: one attempt's SMTP transcript as text (the latest by default).
import type { ApiDeps } from './deps.ts';
import { isMessageId } from './ids.ts';
import { type ApiResponse, problem, text } from './responses.ts';
import { invalidId } from './status.ts';

export async function handleTranscript(
  id: string,
  query: Record<string, string | undefined>,
  deps: ApiDeps,
): Promise<ApiResponse> {
  if (!isMessageId(id)) return invalidId(id);
  const attempt = parseAttempt(query.attempt);
  if (attempt === null) return problem('bad_request', 'attempt must be a positive integer');
  const transcript = await deps.transcripts.get(id, attempt);
  if (transcript === undefined) {
    const which = attempt === undefined ? '' : ` for attempt ${attempt}`;
    return problem('not_found', `no transcript${which} of message ${id}`);
  }
  return text(200, transcript);
}

/** undefined: not given (the latest attempt); null: given but not a positive integer. */
export function parseAttempt(value: string | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,5}$/.test(value)) return null;
  return Number(value);
}
