// Transcripts in S3: one plain-text object per SMTP connection (`transcripts/<day>/<invocation>-<n>.log`),
// one line per entry, shared by every message the connection carried. A message's ledger entry points to its
// part (TranscriptRef: the key and the line runs), and part() cuts that part out again.
import type { S3Client } from '@aws-sdk/client-s3';
import type { TranscriptRef, TranscriptStore } from '../delivery/ports.ts';
import { isTranscriptKey } from './keys.ts';
import { getText, putText } from './s3-objects.ts';

export class S3TranscriptStore implements TranscriptStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, text: string): Promise<void> {
    if (!isTranscriptKey(key))
      throw new TypeError(`not a transcript key: ${JSON.stringify(key.slice(0, 200))}`);
    await putText(this.s3, this.bucket, key, text, 'text/plain; charset=utf-8');
  }

  async part(ref: TranscriptRef): Promise<string | undefined> {
    if (!isTranscriptKey(ref.key)) return undefined;
    const stored = await getText(this.s3, this.bucket, ref.key);
    if (!stored) return undefined;
    const lines = stored.body.split('\n');
    let out = '';
    for (const [first, last] of ref.lines) {
      for (let n = Math.max(0, first); n <= last && n < lines.length; n++) {
        if (lines[n] !== '') out += `${lines[n]}\n`;
      }
    }
    return out;
  }
}
