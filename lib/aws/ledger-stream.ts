// The ledger's DynamoDB stream (NEW_AND_OLD_IMAGES) read as the domain's committed changes.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import type { LedgerChange } from '../delivery/events.ts';
import { statusRecordOfItem } from './ledger-store.ts';

/**
 * A stream record → the status record's change; undefined for what carries no event: a removal (TTL expiry)
 * and the table's other items (idempotency keys, the relay's state).
 */
export function ledgerChangeOf(record: DynamoDBRecord): LedgerChange | undefined {
  const image = record.dynamodb?.NewImage;
  if (record.eventName === 'REMOVE' || !image) return undefined;
  const after = statusRecordOfItem(unmarshallImage(image));
  if (!after) return undefined;
  const old = record.dynamodb?.OldImage;
  const before = old ? statusRecordOfItem(unmarshallImage(old)) : undefined;
  return { ...(before ? { before: before.record } : {}), after: after.record, version: after.version };
}

// aws-lambda's stream AttributeValue and the SDK's are the same wire shape, typed apart.
const unmarshallImage = (image: NonNullable<NonNullable<DynamoDBRecord['dynamodb']>['NewImage']>) =>
  unmarshall(image as Record<string, AttributeValue>);
