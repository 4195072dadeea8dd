// Claim check: a send request too big for an SQS message is stored as `payloads/<id>.json` and the queue
// message carries only the key (QueueMessage.payloadKey).
import type { S3Client } from '@aws-sdk/client-s3';
import { InvalidKeyError, isPayloadKey, payloadKey } from './keys.ts';
import { CorruptObjectError, getText, putText } from './s3-objects.ts';

export class S3PayloadStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  /** Stores the request; returns the key to put in the queue message. */
  async put(id: string, request: unknown): Promise<string> {
    const key = payloadKey(id);
    await putText(this.s3, this.bucket, key, JSON.stringify(request), 'application/json');
    return key;
  }

  /** The stored request, or undefined when it is gone. A key outside payloads/ is rejected (InvalidKeyError). */
  async get(key: string): Promise<unknown> {
    if (!isPayloadKey(key))
      throw new InvalidKeyError(`not a payload key: ${JSON.stringify(key.slice(0, 200))}`);
    const stored = await getText(this.s3, this.bucket, key);
    if (!stored) return undefined;
    try {
      return JSON.parse(stored.body) as unknown;
    } catch {
      throw new CorruptObjectError(`s3://${this.bucket}/${key} is not valid JSON`);
    }
  }
}
