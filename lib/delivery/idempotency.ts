// The Idempotency-Key protocol of POST /v1/messages (IETF draft-ietf-httpapi-idempotency-key-header,
// Stripe's behaviour), behind a port the ledger implements (lib/aws/idempotency-store.ts).
//
// The first request with a key claims it with a conditional write; a retry within 24 h, or the loser of a
// race, gets the same id and nothing is enqueued again. The same key with another body is refused. The
// comparison uses the fingerprint stored in the claim itself, so it holds for the loser of a race too, before
// the winner has written its status record; claims made before the claim carried it fall back to the status
// record's. An id is handed out only once its status record exists: a loser waits briefly for the winner's
// record and is otherwise told to retry, never given an id that a failed claimant may leave without a message.
// A claim left by a request that died before enqueueing is taken over after ABANDONED_CLAIM_MS; one whose
// message was enqueued is marked so (markEnqueued) and never taken over.
import type { StatusRecord, StatusStore, Versioned } from './ports.ts';

export type ClaimResult =
  | { claimed: true }
  | { claimed: false; id: string; createdAt: string; fingerprint?: string; enqueued?: boolean };

export interface IdempotencyStore {
  /** Claims `key` for message `id`, or names the live claim that holds it. */
  claim(key: string, id: string, now: Date, fingerprint?: string): Promise<ClaimResult>;
  /** Marks the claim of `id` as enqueued: from now on it is replayed, never taken over as abandoned. */
  markEnqueued(key: string, id: string): Promise<void>;
  /** Frees the key if `id` still holds it; false when another claim holds it. */
  release(key: string, id: string): Promise<boolean>;
}

/** The key kept changing under the claim for every round it tried; the client should retry. */
export class IdempotencyContentionError extends Error {
  readonly code = 'IDEMPOTENCY_CONTENTION';
}

/**
 * A claim whose status record still does not exist this long after it was made belongs to a request that
 * died between the claim and the record (15 minutes: the longest a Lambda can run, so the claimant is gone).
 */
export const ABANDONED_CLAIM_MS = 15 * 60 * 1000;

/**
 * Pauses before each further look for the status record of a claim that has none yet (3 s in all). The
 * claimant writes it right after its claim, so a racing request normally finds it at the first or second
 * look; one that never appears belongs to a claimant that failed or died, and its id must not be handed out.
 */
export const RECORD_WAIT_MS = [50, 100, 200, 400, 800, 1500];

export type KeyClaim =
  /** This request holds the key: submit it under its id. `tookOver`: the abandoned claim it replaced. */
  | { kind: 'claimed'; tookOver?: string }
  /** A retry of a request that was submitted: answer with its id, enqueue nothing. */
  | { kind: 'replay'; id: string }
  /** Another request holds the key and has no status record (yet): retry later. */
  | { kind: 'in_use' }
  /** The key was used with another request body. */
  | { kind: 'reused' };

export interface KeyClaimDeps {
  idempotency: IdempotencyStore;
  status: Pick<StatusStore, 'get'>;
  sleep?: (ms: number) => Promise<void>;
}

/** Claims `key` for a new message `id` with request `fingerprint`, and says what the request is. */
export async function claimKey(
  deps: KeyClaimDeps,
  key: string,
  id: string,
  fingerprint: string,
  now: Date,
  takeOver = true,
): Promise<KeyClaim> {
  let result: ClaimResult;
  try {
    result = await deps.idempotency.claim(key, id, now, fingerprint);
  } catch (error) {
    if (error instanceof IdempotencyContentionError) return { kind: 'in_use' };
    throw error;
  }
  if (result.claimed) return { kind: 'claimed' };
  const original = await deps.status.get(result.id);
  // The key is free again when its request died before enqueueing (no record long after the claim; one that
  // was enqueued gets its record from the worker): replaying that id would lose the request.
  const abandoned =
    !original && !result.enqueued && now.getTime() - Date.parse(result.createdAt) >= ABANDONED_CLAIM_MS;
  if (takeOver && abandoned) {
    // release() deletes only the claim that still names result.id, so of two requests taking over at once,
    // one re-claims and the other replays its id.
    await deps.idempotency.release(key, result.id);
    const again = await claimKey(deps, key, id, fingerprint, now, false);
    return again.kind === 'claimed' ? { kind: 'claimed', tookOver: result.id } : again;
  }
  // The claim names its request's fingerprint: a different body is refused whether or not the claimant has
  // written its status record yet (claims from before the claim carried it are compared below).
  if (result.fingerprint !== undefined && result.fingerprint !== fingerprint) return { kind: 'reused' };
  const record = original ?? (await awaitRecord(deps, result.id));
  // No record yet: the claimant is slow, or failed and could not give the key back. Its id may never
  // exist, so it is not handed out; the client retries (and takes over the key once it is abandoned).
  if (!record) return { kind: 'in_use' };
  const originalFingerprint = result.fingerprint ?? record.value.requestFingerprint;
  if (originalFingerprint !== undefined && originalFingerprint !== fingerprint) return { kind: 'reused' };
  return { kind: 'replay', id: result.id };
}

async function awaitRecord(deps: KeyClaimDeps, id: string): Promise<Versioned<StatusRecord> | undefined> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (const pause of RECORD_WAIT_MS) {
    await sleep(pause);
    const record = await deps.status.get(id);
    if (record) return record;
  }
  return undefined;
}
