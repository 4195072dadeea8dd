// The S3 key layout of the bucket, in one place. Ids are checked before they become part of a key, so a
// request path like `../idempotency/x` can never address another object.

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

const transcriptKeyPattern = /^transcripts\/\d{4}-\d{2}-\d{2}\/[A-Za-z0-9_.-]{1,200}\.log$/;

/** `transcripts/<day>/<invocation>-<n>.log`: one object per SMTP connection. */
export function isTranscriptKey(key: string): boolean {
  return transcriptKeyPattern.test(key);
}

export const payloadKey = (id: string): string => `payloads/${checkedId(id)}.json`;

const payloadKeyPattern = /^payloads\/[A-Za-z0-9_-]{1,128}\.json$/;

export function isPayloadKey(key: string): boolean {
  return payloadKeyPattern.test(key);
}
