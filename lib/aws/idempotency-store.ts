// Idempotency keys: `idempotency/<sha256(key)>.json` holding { id, createdAt, fingerprint? }, claimed with a
// conditional write (If-None-Match: *), so of two requests racing with one key exactly one gets to enqueue.
// The claim carries the fingerprint of the request that made it, so a loser can tell a retry from a reuse of
// the key with another body at once, before the winner has written anything else. Claims written without one
// (by an earlier version) still read back: their fingerprint is simply absent.
// A claim older than the TTL (24 h) is free again: it is overwritten with If-Match on the ETag that was read,
// so two requests reviving the same expired key still cannot both win.
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { idempotencyKey } from './keys.ts';
import { getText, isConditionFailure, isNotFound, putText, type WriteCondition } from './s3-objects.ts';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Rounds of create / read / take-over before giving up; each round loses only to another writer. */
const maxRounds = 5;

export interface IdempotencyRecord {
  id: string;
  createdAt: string;
  /** The claiming request's fingerprint (functions/api/fingerprint.ts); absent on older claims. */
  fingerprint?: string;
}

export type ClaimResult =
  | { claimed: true }
  | { claimed: false; id: string; createdAt: string; fingerprint?: string };

/** The key kept changing under us for maxRounds rounds; the caller should answer 409 and let the client retry. */
export class IdempotencyContentionError extends Error {
  readonly code = 'IDEMPOTENCY_CONTENTION';
}

export class S3IdempotencyStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly ttlMs: number = IDEMPOTENCY_TTL_MS,
  ) {}

  /**
   * Claims `clientKey` for message `id` (stored with the request's `fingerprint`); if a live claim exists,
   * returns the id that holds it and, when that claim has one, its fingerprint.
   */
  async claim(
    clientKey: string,
    id: string,
    now: Date = new Date(),
    fingerprint?: string,
  ): Promise<ClaimResult> {
    const key = idempotencyKey(clientKey);
    const record: IdempotencyRecord = {
      id,
      createdAt: now.toISOString(),
      ...(fingerprint !== undefined ? { fingerprint } : {}),
    };
    let condition: WriteCondition = { ifNoneMatch: '*' };
    for (let round = 0; round < maxRounds; round++) {
      if (await this.tryWrite(key, record, condition)) return { claimed: true };
      const stored = await getText(this.s3, this.bucket, key);
      if (!stored) {
        condition = { ifNoneMatch: '*' }; // released in between: try to create it again
        continue;
      }
      const existing = parseRecord(stored.body);
      if (existing && !this.expired(existing, now)) {
        return { claimed: false, ...existing };
      }
      // Expired (or unreadable, so it cannot name an id): take it over, but only this exact version.
      condition = { ifMatch: stored.etag };
    }
    throw new IdempotencyContentionError(`idempotency key still contended after ${maxRounds} rounds`);
  }

  /** Frees the key if `id` still holds it (e.g. enqueueing failed, so a retry must be able to claim it). */
  async release(clientKey: string, id: string): Promise<boolean> {
    const key = idempotencyKey(clientKey);
    const stored = await getText(this.s3, this.bucket, key);
    if (!stored || parseRecord(stored.body)?.id !== id) return false;
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key, IfMatch: stored.etag }));
      return true;
    } catch (error) {
      if (isConditionFailure(error) || isNotFound(error)) return false;
      throw error;
    }
  }

  private expired(record: IdempotencyRecord, now: Date): boolean {
    const created = Date.parse(record.createdAt);
    return Number.isNaN(created) || now.getTime() - created >= this.ttlMs;
  }

  private async tryWrite(
    key: string,
    record: IdempotencyRecord,
    condition: WriteCondition,
  ): Promise<boolean> {
    try {
      await putText(this.s3, this.bucket, key, JSON.stringify(record), 'application/json', condition);
      return true;
    } catch (error) {
      if (isConditionFailure(error) || ('ifMatch' in condition && isNotFound(error))) return false;
      throw error;
    }
  }
}

function parseRecord(body: string): IdempotencyRecord | undefined {
  try {
    const value = JSON.parse(body) as Partial<IdempotencyRecord> | null;
    if (typeof value?.id !== 'string' || typeof value.createdAt !== 'string') return undefined;
    const record: IdempotencyRecord = { id: value.id, createdAt: value.createdAt };
    if (typeof value.fingerprint === 'string') record.fingerprint = value.fingerprint;
    return record;
  } catch {
    return undefined;
  }
}
