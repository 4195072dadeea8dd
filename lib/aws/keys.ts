// The S3 key layout of the bucket, in one place. Ids are checked before they become part of a key, so a
// request path like `../idempotency/x` can never address another object.
import { createHash } from 'node:crypto';

const idPattern = /^[A-Za-z0-9_-]{1,128}$/;

export class InvalidKeyError extends Error {
  readonly code = 'INVALID_KEY';
}

export function isValidId(id: string): boolean {
  return idPattern.test(id);
}

function checkedId(id: string): string {
  if (!isValidId(id)) throw new InvalidKeyError(`invalid message id (expected 1-128 of A-Z a-z 0-9 _ -)`);
  return id;
}

function checkedAttempt(attempt: number): number {
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new InvalidKeyError(`invalid attempt number ${attempt} (expected an integer ≥ 1)`);
  }
  return attempt;
}

export const statusKey = (id: string): string => `messages/${checkedId(id)}.json`;

export const transcriptPrefix = (id: string): string => `transcripts/${checkedId(id)}/`;

export const transcriptKey = (id: string, attempt: number): string =>
  `${transcriptPrefix(id)}${checkedAttempt(attempt)}.log`;

export const payloadKey = (id: string): string => `payloads/${checkedId(id)}.json`;

const payloadKeyPattern = /^payloads\/[A-Za-z0-9_-]{1,128}\.json$/;

export function isPayloadKey(key: string): boolean {
  return payloadKeyPattern.test(key);
}

/** The client's Idempotency-Key is hashed: any characters, fixed length, not readable from a listing. */
export const idempotencyKey = (clientKey: string): string =>
  `idempotency/${createHash('sha256').update(clientKey, 'utf8').digest('hex')}.json`;
