// Transcripts of delivery attempts in S3: `transcripts/<id>/<attempt>.log`, one per attempt, plain text.
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { TranscriptStore } from '../delivery/ports.ts';
import { isValidId, transcriptKey, transcriptPrefix } from './keys.ts';
import { getText, putText } from './s3-objects.ts';

export class S3TranscriptStore implements TranscriptStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(id: string, attempt: number, text: string): Promise<string> {
    const key = transcriptKey(id, attempt);
    await putText(this.s3, this.bucket, key, text, 'text/plain; charset=utf-8');
    return key;
  }

  /** The transcript of `attempt`, or of the latest attempt when none is given. */
  async get(id: string, attempt?: number): Promise<string | undefined> {
    if (!isValidId(id)) return undefined;
    if (attempt !== undefined && (!Number.isSafeInteger(attempt) || attempt < 1)) return undefined;
    const number = attempt ?? (await this.latestAttempt(id));
    if (number === undefined) return undefined;
    return (await getText(this.s3, this.bucket, transcriptKey(id, number)))?.body;
  }

  /** Highest attempt number stored, compared as numbers (10 comes after 9). */
  async latestAttempt(id: string): Promise<number | undefined> {
    const prefix = transcriptPrefix(id);
    let latest: number | undefined;
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        const match = /^(\d+)\.log$/.exec(object.Key?.slice(prefix.length) ?? '');
        if (match) latest = Math.max(latest ?? 0, Number(match[1]));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return latest;
  }
}
