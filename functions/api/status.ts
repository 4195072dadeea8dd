// GET /v1/messages/{id}: the status ledger entry, as a public view (no lease, transcripts as attempt links).
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { ApiDeps } from './deps.ts';
import { isMessageId } from './ids.ts';
import { type ApiResponse, json, problem } from './responses.ts';

export function invalidId(id: string): ApiResponse {
  return problem('bad_request', `"${id.slice(0, 64)}" is not a message id (26 characters, Crockford base32)`);
}

export async function handleStatus(id: string, deps: ApiDeps): Promise<ApiResponse> {
  if (!isMessageId(id)) return invalidId(id);
  const found = await deps.status.get(id);
  if (!found) return problem('not_found', `no message with id ${id}`);
  return json(200, statusView(found.value));
}

export interface StatusView extends Omit<StatusRecord, 'lease' | 'transcripts' | 'requestFingerprint'> {
  transcripts: { attempt: number; href: string }[];
}

/** The record without internals (the worker's lease, the body hash); transcript keys become API links. */
export function statusView(record: StatusRecord): StatusView {
  const { lease: _lease, requestFingerprint: _fingerprint, transcripts, ...rest } = record;
  return {
    ...rest,
    // One link per attempt (an attempt that used two connections has two parts, served as one transcript).
    transcripts: [...new Set(transcripts.map((t) => t.attempt))].map((attempt) => ({
      attempt,
      href: `/v1/messages/${record.id}/transcript?attempt=${attempt}`,
    })),
  };
}
