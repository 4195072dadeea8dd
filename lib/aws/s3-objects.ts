// Small S3 helpers shared by the stores: read an object with its ETag, write one under a condition, and
// recognise the errors that mean "the condition did not hold" or "no such object".
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** A stored object that is not what this code wrote (hand-edited, truncated). */
export class CorruptObjectError extends Error {
  readonly code = 'CORRUPT_OBJECT';
}

export interface StoredText {
  body: string;
  /** The ETag as S3 returned it (quoted); S3 and moto accept it quoted or not in If-Match. */
  etag: string;
}

/** `ifNoneMatch: '*'` creates only; `ifMatch` replaces only that version. */
export type WriteCondition = { ifNoneMatch: '*' } | { ifMatch: string };

interface AwsErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function errorShape(error: unknown): AwsErrorShape {
  return typeof error === 'object' && error !== null ? (error as AwsErrorShape) : {};
}

/**
 * A conditional write that lost: 412 PreconditionFailed, or 409 ConditionalRequestConflict (S3's answer when
 * a concurrent conditional write to the same key is still in progress).
 */
export function isConditionFailure(error: unknown): boolean {
  const { name, $metadata } = errorShape(error);
  return (
    name === 'PreconditionFailed' ||
    name === 'ConditionalRequestConflict' ||
    $metadata?.httpStatusCode === 412 ||
    $metadata?.httpStatusCode === 409
  );
}

export function isNotFound(error: unknown): boolean {
  const { name, $metadata } = errorShape(error);
  // A missing bucket is a misconfiguration, never "no such record".
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || $metadata?.httpStatusCode === 404;
}

export async function getText(s3: S3Client, bucket: string, key: string): Promise<StoredText | undefined> {
  try {
    const result = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = (await result.Body?.transformToString('utf-8')) ?? '';
    return { body, etag: result.ETag ?? '' };
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** Writes the object; returns its new ETag. Condition failures surface as the SDK error (see isConditionFailure). */
export async function putText(
  s3: S3Client,
  bucket: string,
  key: string,
  body: string,
  contentType: string,
  condition?: WriteCondition,
): Promise<string> {
  const result = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: contentType,
      ...(condition && 'ifNoneMatch' in condition ? { IfNoneMatch: condition.ifNoneMatch } : {}),
      ...(condition && 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : {}),
    }),
  );
  return result.ETag ?? '';
}
