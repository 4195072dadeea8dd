// The ledger table's shape, in one place: the key schema, the state index and the item keys. The template
// (infra/template.yaml) declares the same; `npm run dev` and the tests create it with ensureLedgerTable().
// See lib/aws/README.md for the item shapes and the access patterns.
import { createHash } from 'node:crypto';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/** How long ensureLedgerTable waits for a new table to become ACTIVE (AWS: usually seconds). */
const TABLE_ACTIVE_WAIT_SECONDS = 120;

/** The partition key of every item: `msg#<id>`, `idem#<sha256>`, `relay#<name>`, `sup#<address>`. */
export const KEY = 'pk';
/** The state index: messages by state (hash) and creation time (range `<createdAt>#<id>`), newest first. */
export const STATE_INDEX = 'byState';
export const STATE_INDEX_HASH = 'listState';
export const STATE_INDEX_RANGE = 'listAt';
/** Epoch seconds after which DynamoDB's TTL deletes the item. */
export const TTL_ATTRIBUTE = 'expiresAt';

export const messageKey = (id: string): string => `msg#${id}`;
export const relayKey = (name: string): string => `relay#${name}`;
/** A suppression list entry: the address as lib/delivery/suppression.ts keys it (`*@domain` for a domain). */
export const suppressionItemKey = (address: string): string => `sup#${address}`;
/** The client's Idempotency-Key is hashed: any characters, fixed length, never stored as given. */
export const idempotencyItemKey = (clientKey: string): string =>
  `idem#${createHash('sha256').update(clientKey, 'utf8').digest('hex')}`;

export function ledgerTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: KEY, AttributeType: 'S' },
      { AttributeName: STATE_INDEX_HASH, AttributeType: 'S' },
      { AttributeName: STATE_INDEX_RANGE, AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: KEY, KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: STATE_INDEX,
        KeySchema: [
          { AttributeName: STATE_INDEX_HASH, KeyType: 'HASH' },
          { AttributeName: STATE_INDEX_RANGE, KeyType: 'RANGE' },
        ],
        // Keys only: a claim or an outcome that keeps the index keys writes nothing to the index.
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
    // The ledger's committed changes, for event consumers (nothing reads it for delivery: the API enqueues
    // first, see functions/api/submit.ts).
    StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
  };
}

/** Creates the table (with its stream and TTL) when it does not exist; returns its stream ARN. */
export async function ensureLedgerTable(dynamodb: DynamoDBClient, tableName: string): Promise<string> {
  try {
    const described = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
    if (described.Table?.TableStatus === 'CREATING')
      await waitUntilTableExists(
        { client: dynamodb, maxWaitTime: TABLE_ACTIVE_WAIT_SECONDS },
        { TableName: tableName },
      );
    return described.Table?.LatestStreamArn ?? '';
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
  }
  try {
    await dynamodb.send(new CreateTableCommand(ledgerTableDefinition(tableName)));
  } catch (error) {
    // Created by a concurrent starter in between: use theirs.
    if ((error as { name?: string }).name !== 'ResourceInUseException') throw error;
  }
  // DynamoDB (LocalStack too) creates a table asynchronously: TTL and writes need it ACTIVE. moto's is at once.
  await waitUntilTableExists(
    { client: dynamodb, maxWaitTime: TABLE_ACTIVE_WAIT_SECONDS },
    { TableName: tableName },
  );
  try {
    await dynamodb.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      }),
    );
  } catch (error) {
    // "TimeToLive is already enabled": a concurrent starter got there first.
    if ((error as { name?: string }).name !== 'ValidationException') throw error;
  }
  const described = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  return described.Table?.LatestStreamArn ?? '';
}
