// The status ledger in S3 (`messages/<id>.json`), updated only with conditional writes: create with
// If-None-Match: *, replace with If-Match: <ETag>. Two workers holding the same version cannot both win.
//
// moto (5.2.5) checks both conditions, but its check-then-write is not atomic across its request threads;
// real S3 is. The integration tests race concurrent writers against moto and saw exactly one winner each
// time; a test that could lose that race in moto would be testing moto, not this adapter.
import type { S3Client } from '@aws-sdk/client-s3';
import type { StatusRecord, StatusStore, Versioned } from '../delivery/ports.ts';
import { VersionConflictError } from '../delivery/ports.ts';
import { isValidId, statusKey } from './keys.ts';
import {
  CorruptObjectError,
  getText,
  isConditionFailure,
  isNotFound,
  putText,
  type WriteCondition,
} from './s3-objects.ts';

export class S3StatusStore implements StatusStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  create(record: StatusRecord): Promise<Versioned<StatusRecord>> {
    return this.write(record, { ifNoneMatch: '*' }, `status record ${record.id} already exists`);
  }

  async get(id: string): Promise<Versioned<StatusRecord> | undefined> {
    // An id that could not have been stored is simply not found (GET /v1/messages/<anything>).
    if (!isValidId(id)) return undefined;
    const key = statusKey(id);
    const stored = await getText(this.s3, this.bucket, key);
    if (!stored) return undefined;
    let value: StatusRecord;
    try {
      value = JSON.parse(stored.body) as StatusRecord;
    } catch {
      throw new CorruptObjectError(`s3://${this.bucket}/${key} is not valid JSON`);
    }
    if (value?.id !== id)
      throw new CorruptObjectError(`s3://${this.bucket}/${key} does not hold record ${id}`);
    return { value, version: stored.etag };
  }

  update(record: StatusRecord, version: string): Promise<Versioned<StatusRecord>> {
    return this.write(record, { ifMatch: version }, `status record ${record.id} changed since ${version}`);
  }

  private async write(
    record: StatusRecord,
    condition: WriteCondition,
    conflict: string,
  ): Promise<Versioned<StatusRecord>> {
    const key = statusKey(record.id);
    try {
      const etag = await putText(
        this.s3,
        this.bucket,
        key,
        JSON.stringify(record),
        'application/json',
        condition,
      );
      return { value: record, version: etag };
    } catch (error) {
      // If-Match on a record that no longer exists is a lost race as well (S3 answers 404 NoSuchKey).
      if (isConditionFailure(error) || ('ifMatch' in condition && isNotFound(error))) {
        throw new VersionConflictError(conflict);
      }
      throw error;
    }
  }
}
