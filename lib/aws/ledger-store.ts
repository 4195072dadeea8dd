// The status ledger in DynamoDB: one item per message (`pk = msg#<id>`), changed only by conditional writes
// on its version number `v`. Two writers holding the same version cannot both win (DynamoDB evaluates the
// condition and the write atomically, in moto as in AWS). Item shapes and access patterns: lib/aws/README.md.
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { MessageState, StatusRecord, StatusStore, Versioned } from '../delivery/ports.ts';
import { VersionConflictError } from '../delivery/ports.ts';
import { isValidId } from './keys.ts';
import {
  KEY,
  messageKey,
  STATE_INDEX,
  STATE_INDEX_HASH,
  STATE_INDEX_RANGE,
  TTL_ATTRIBUTE,
} from './ledger-table.ts';

/** BatchGetItem takes at most 100 keys per call. */
const BATCH_GET_LIMIT = 100;
/** Rounds of re-asking for the keys DynamoDB left unprocessed (throttling) before giving up. */
const UNPROCESSED_ROUNDS = 5;

/** The item attributes that are not StatusRecord fields. */
const ITEM_ONLY = new Set([KEY, 'v', STATE_INDEX_HASH, STATE_INDEX_RANGE, TTL_ATTRIBUTE]);

/** StatusRecord fields that a later version may drop (REMOVEd when undefined). */
const DROPPABLE: readonly (keyof StatusRecord)[] = ['nextAttemptAt', 'lease', 'error'];

/**
 * The index partition a state lists under. A claim ('sending') keeps the message where it was, so that the
 * claim, the most frequent write, changes no index key and writes nothing to the index.
 */
function listedState(state: MessageState): MessageState | undefined {
  return state === 'sending' ? undefined : state;
}

export class DynamoLedger implements StatusStore {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly table: string,
    /** Days until DynamoDB's TTL deletes a record (RETENTION_DAYS). */
    private readonly retentionDays: number,
  ) {}

  async create(record: StatusRecord): Promise<Versioned<StatusRecord>> {
    const expires = Math.floor(Date.parse(record.createdAt) / 1000) + this.retentionDays * 86_400;
    try {
      await this.documents.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...record,
            [KEY]: messageKey(record.id),
            v: 1,
            [STATE_INDEX_HASH]: listedState(record.state) ?? 'queued',
            [STATE_INDEX_RANGE]: `${record.createdAt}#${record.id}`,
            [TTL_ATTRIBUTE]: expires,
          },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': KEY },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error))
        throw new VersionConflictError(`status record ${record.id} already exists`);
      throw error;
    }
    return { value: record, version: '1' };
  }

  async get(id: string): Promise<Versioned<StatusRecord> | undefined> {
    // An id that could not have been stored is simply not found (GET /v1/messages/<anything>).
    if (!isValidId(id)) return undefined;
    const { Item } = await this.documents.send(
      new GetCommand({
        TableName: this.table,
        Key: { [KEY]: messageKey(id) },
        ConsistentRead: true,
      }),
    );
    return Item ? toVersioned(Item) : undefined;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, Versioned<StatusRecord>>> {
    const found = new Map<string, Versioned<StatusRecord>>();
    const unique = [...new Set(ids.filter(isValidId))];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += BATCH_GET_LIMIT)
      chunks.push(unique.slice(i, i + BATCH_GET_LIMIT));
    await Promise.all(
      chunks.map(async (chunk) => {
        let keys: Record<string, unknown>[] = chunk.map((id) => ({ [KEY]: messageKey(id) }));
        for (let round = 0; keys.length > 0; round++) {
          if (round === UNPROCESSED_ROUNDS)
            throw new Error(`DynamoDB left ${keys.length} keys unprocessed after ${round} rounds`);
          if (round > 0) await pause(50 * 2 ** round);
          const out = await this.documents.send(
            new BatchGetCommand({
              RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } },
            }),
          );
          for (const item of out.Responses?.[this.table] ?? []) {
            const entry = toVersioned(item);
            found.set(entry.value.id, entry);
          }
          keys = (out.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined) ?? [];
        }
      }),
    );
    return found;
  }

  async update(record: StatusRecord, version: string): Promise<Versioned<StatusRecord>> {
    const names: Record<string, string> = { '#v': 'v' };
    const values: Record<string, unknown> = { ':expected': Number(version), ':one': 1 };
    const sets: string[] = ['#v = #v + :one'];
    const removes: string[] = [];
    let n = 0;
    for (const [field, value] of Object.entries(record)) {
      if (field === 'id' || ITEM_ONLY.has(field) || value === undefined) continue;
      names[`#f${n}`] = field;
      values[`:f${n}`] = value;
      sets.push(`#f${n} = :f${n}`);
      n++;
    }
    for (const field of DROPPABLE) {
      if (record[field] !== undefined) continue;
      names[`#f${n}`] = field;
      removes.push(`#f${n}`);
      n++;
    }
    const listed = listedState(record.state);
    if (listed) {
      names['#ls'] = STATE_INDEX_HASH;
      values[':ls'] = listed;
      sets.push('#ls = :ls');
    }
    try {
      await this.documents.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [KEY]: messageKey(record.id) },
          UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ConditionExpression: '#v = :expected',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      // A record that no longer exists fails the condition too (#v is missing): a lost race as well.
      if (isConditionFailure(error))
        throw new VersionConflictError(`status record ${record.id} changed since version ${version}`);
      throw error;
    }
    return { value: record, version: String(Number(version) + 1) };
  }

  /**
   * Message ids in `state`, newest first, from the state index (keys only); `cursor` continues a page.
   * The records themselves come from getMany.
   */
  async listIds(
    state: MessageState,
    options: { limit: number; cursor?: string } = { limit: 50 },
  ): Promise<{ ids: string[]; cursor?: string }> {
    const out = await this.documents.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: STATE_INDEX,
        KeyConditionExpression: '#s = :s',
        ExpressionAttributeNames: { '#s': STATE_INDEX_HASH },
        ExpressionAttributeValues: { ':s': state },
        ScanIndexForward: false,
        Limit: options.limit,
        ...(options.cursor ? { ExclusiveStartKey: decodeCursor(options.cursor) } : {}),
      }),
    );
    const ids = (out.Items ?? []).flatMap((item) => {
      const key = item[KEY];
      return typeof key === 'string' && key.startsWith('msg#') ? [key.slice(4)] : [];
    });
    return {
      ids,
      ...(out.LastEvaluatedKey ? { cursor: encodeCursor(out.LastEvaluatedKey) } : {}),
    };
  }
}

/** The states a message can be listed under (the index partitions). */
export const LISTED_STATES: readonly MessageState[] = [
  'queued',
  'deferred',
  'sent',
  'partially_sent',
  'failed',
];

function toVersioned(item: Record<string, unknown>): Versioned<StatusRecord> {
  const value: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(item)) if (!ITEM_ONLY.has(field)) value[field] = v;
  return { value: value as unknown as StatusRecord, version: String(item.v) };
}

function isConditionFailure(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'ConditionalCheckFailedException';
}

const encodeCursor = (key: Record<string, unknown>): string =>
  Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');

function decodeCursor(cursor: string): Record<string, unknown> {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    // Exactly the index's key attributes, as strings: anything else is not a cursor this API made.
    const fields = [KEY, STATE_INDEX_HASH, STATE_INDEX_RANGE];
    if (
      key &&
      typeof key === 'object' &&
      !Array.isArray(key) &&
      Object.keys(key).length === fields.length &&
      fields.every((f) => typeof (key as Record<string, unknown>)[f] === 'string')
    )
      return key as Record<string, unknown>;
  } catch {
    // falls through
  }
  throw new InvalidCursorError('cursor is not one this API returned');
}

export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR';
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
