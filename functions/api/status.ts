// GET /v1/messages/{id}: the status ledger entry, as a public view (no lease, transcripts as attempt links).
import type { StatusRecord, Versioned } from '../../lib/delivery/ports.ts';
import { type Caller, mayRead } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { isMessageId } from './ids.ts';
import { type ApiResponse, json, problem } from './responses.ts';

export function invalidId(id: string): ApiResponse {
  return problem('bad_request', `"${id.slice(0, 64)}" is not a message id (26 characters, Crockford base32)`);
}

export async function handleStatus(
  id: string,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  if (!isMessageId(id)) return invalidId(id);
  const found = await readable(id, caller, deps);
  if (!found) return problem('not_found', `no message with id ${id}`);
  return json(200, statusView(found.value));
}

/** The record, if it exists and `caller` may read it: another caller's message is not found, like a missing one. */
export async function readable(
  id: string,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<Versioned<StatusRecord> | undefined> {
  const found = await deps.status.get(id);
  return found && mayRead(caller, found.value, deps.config.readAllPrincipals) ? found : undefined;
}

export interface StatusView
  extends Omit<StatusRecord, 'lease' | 'transcripts' | 'requestFingerprint' | 'idempotencyKey' | 'caller'> {
  transcripts: { attempt: number; href: string }[];
  caller?: { principal: string; accountId?: string };
}

/**
 * The record without internals (the worker's lease, the body hash, the Idempotency-Key, the caller's access
 * key); transcript keys become API links.
 */
export function statusView(record: StatusRecord): StatusView {
  const {
    lease: _lease,
    requestFingerprint: _fingerprint,
    idempotencyKey: _key,
    caller,
    transcripts,
    ...rest
  } = record;
  return {
    ...rest,
    ...(caller
      ? {
          caller: {
            principal: caller.principal,
            ...(caller.accountId ? { accountId: caller.accountId } : {}),
          },
        }
      : {}),
    // One link per attempt (an attempt that used two connections has two parts, served as one transcript).
    transcripts: [...new Set(transcripts.map((t) => t.attempt))].map((attempt) => ({
      attempt,
      href: `/v1/messages/${record.id}/transcript?attempt=${attempt}`,
    })),
  };
}
