// The status ledger in DynamoDB: one item per message (`pk = msg#<id>`), changed only by conditional writes
// on its version number `v`. Two writers holding the same version cannot both win (DynamoDB evaluates the
// condition and the write atomically, in moto as in AWS). Item shapes and access patterns: lib/aws/README.md.
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  ListQuery,
  MessageState,
  StatusIndex,
  StatusRecord,
  StatusStore,
  Versioned,
} from '../delivery/ports.ts';
import { VersionConflictError } from '../delivery/ports.ts';
import { BATCH_GET_LIMIT, BATCH_WRITE_LIMIT, chunked, inRounds } from './batch-calls.ts';
import { isValidId } from './keys.ts';
import {
  KEY,
  messageKey,
  STATE_INDEX,
  STATE_INDEX_HASH,
  STATE_INDEX_RANGE,
  TTL_ATTRIBUTE,
} from './ledger-table.ts';

/**
 * The record's lists and maps, kept as one JSON string attribute: nothing reads them inside DynamoDB (no
 * condition, key or projection names them; every write replaces the whole item), and one string marshals,
 * parses and is stored for a fraction of the work of nested M/L attributes — in the Lambda and in the
 * emulator alike (moto: ~2.4 against ~3.8 ms per PutItem). Same item size within a few bytes, same units.
 */
const NESTED = 'nested';
const NESTED_FIELDS = new Set(['recipients', 'transcripts', 'lease', 'tags', 'caller']);
/** The item attributes that are not StatusRecord fields. */
const ITEM_ONLY = new Set([KEY, 'v', STATE_INDEX_HASH, STATE_INDEX_RANGE, TTL_ATTRIBUTE, NESTED]);

/**
 * The index partition a state lists under. A claim ('sending') keeps the message where it was, so that the
 * claim, the most frequent write, changes no index key and writes nothing to the index.
 */
function listedState(state: MessageState): MessageState | undefined {
  return state === 'sending' ? undefined : state;
}

export class DynamoLedger implements StatusStore, StatusIndex {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly table: string,
    /** Days until DynamoDB's TTL deletes a record (RETENTION_DAYS). */
    private readonly retentionDays: number,
  ) {}

  async create(record: StatusRecord): Promise<Versioned<StatusRecord>> {
    try {
      await this.documents.send(
        new PutCommand({
          TableName: this.table,
          Item: this.newItem(record),
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': KEY },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error))
        throw new VersionConflictError(`status record ${record.id} already exists`);
      throw error;
    }
    return { value: record, version: versionToken(1, listedState(record.state) ?? 'queued') };
  }

  /**
   * BatchWriteItem, 25 records per call, the calls in parallel: no condition (BatchWriteItem has none), so a
   * record that exists is replaced. The API uses it for a batch's fresh ids, which nobody else writes while
   * the grace period of lib/delivery/batch.ts lasts; at 25 puts per request instead of one, it costs the
   * same write units in a twenty-fifth of the requests.
   */
  async createMany(records: readonly StatusRecord[]): Promise<{ id: string; error: unknown }[]> {
    const failed: { id: string; error: unknown }[] = [];
    await Promise.all(
      chunked(records, BATCH_WRITE_LIMIT).map(async (chunk) => {
        type Put = { PutRequest: { Item: Record<string, unknown> } };
        let left: Put[] = chunk.map((record) => ({ PutRequest: { Item: this.newItem(record) } }));
        try {
          await inRounds(left, 'writes', async (puts) => {
            left = puts;
            const out = await this.documents.send(
              new BatchWriteCommand({ RequestItems: { [this.table]: puts } }),
            );
            left = (out.UnprocessedItems?.[this.table] as Put[] | undefined) ?? [];
            return left;
          });
        } catch (error) {
          const unwritten = new Set(left.map((p) => p.PutRequest.Item[KEY]));
          for (const record of chunk)
            if (unwritten.has(messageKey(record.id))) failed.push({ id: record.id, error });
        }
      }),
    );
    return failed;
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
    await Promise.all(
      chunked(unique, BATCH_GET_LIMIT).map((chunk) =>
        inRounds(
          chunk.map((id): Record<string, unknown> => ({ [KEY]: messageKey(id) })),
          'keys',
          async (keys) => {
            const out = await this.documents.send(
              new BatchGetCommand({
                RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } },
              }),
            );
            for (const item of out.Responses?.[this.table] ?? []) {
              const entry = toVersioned(item);
              found.set(entry.value.id, entry);
            }
            return (out.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined) ?? [];
          },
        ),
      ),
    );
    return found;
  }

  /**
   * The whole item replaced, on the condition that it is still at the version read: a PutItem rather than an
   * UpdateItem that SETs every field, because the record changes as a whole (recipients, transcripts, lease)
   * and a put costs the same write units; fields the new version lacks (lease, nextAttemptAt, error) are gone.
   */
  async update(record: StatusRecord, version: string): Promise<Versioned<StatusRecord>> {
    const seen = parseVersionToken(version);
    const next = seen.v + 1;
    // A claim ('sending') stays listed where the message was: the index entry is untouched.
    const listState = listedState(record.state) ?? seen.listState;
    try {
      await this.documents.send(
        new PutCommand({
          TableName: this.table,
          Item: this.item(record, next, listState),
          ConditionExpression: '#v = :expected',
          ExpressionAttributeNames: { '#v': 'v' },
          ExpressionAttributeValues: { ':expected': seen.v },
        }),
      );
    } catch (error) {
      // A record that no longer exists fails the condition too (#v is missing): a lost race as well.
      if (isConditionFailure(error))
        throw new VersionConflictError(`status record ${record.id} changed since version ${seen.v}`);
      throw error;
    }
    return { value: record, version: versionToken(next, listState) };
  }

  /** A record's first version, listed under its state ('queued' for a claim). */
  private newItem(record: StatusRecord): Record<string, unknown> {
    return this.item(record, 1, listedState(record.state) ?? 'queued');
  }

  private item(record: StatusRecord, v: number, listState: MessageState): Record<string, unknown> {
    const item: Record<string, unknown> = {
      [KEY]: messageKey(record.id),
      v,
      [STATE_INDEX_HASH]: listState,
      [STATE_INDEX_RANGE]: `${record.createdAt}#${record.id}`,
      [TTL_ATTRIBUTE]: Math.floor(Date.parse(record.createdAt) / 1000) + this.retentionDays * 86_400,
    };
    const nested: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(record)) {
      if (value === undefined) continue;
      if (NESTED_FIELDS.has(field)) nested[field] = value;
      else item[field] = value;
    }
    item[NESTED] = JSON.stringify(nested);
    return item;
  }

  /**
   * Message ids listed under any of `states`, newest first by creation time, from the state index (keys only;
   * the records themselves come from getMany). Each state is its own index partition: every partition gives
   * its newest `limit` + 1 keys below the cursor, and the merge of those is exact for the page. The cursor is
   * the index range key of the page's last entry. A message that changes state while a caller pages may be
   * seen twice or not at all (it moves to another partition), as with any index read while writes go on.
   */
  async listIds(query: ListQuery): Promise<{ ids: string[]; cursor?: string }> {
    const upper = query.cursor !== undefined ? decodeCursor(query.cursor) : rangeEnd(query.until);
    const lower = query.since ?? ' ';
    const pages = await Promise.all(
      [...new Set(query.states)].map(async (state) => {
        const out = await this.documents.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: STATE_INDEX,
            KeyConditionExpression: '#s = :s AND #at BETWEEN :lo AND :hi',
            ExpressionAttributeNames: { '#s': STATE_INDEX_HASH, '#at': STATE_INDEX_RANGE },
            ExpressionAttributeValues: { ':s': state, ':lo': lower, ':hi': upper },
            ScanIndexForward: false,
            // One more than a page: the cursor's own entry (BETWEEN is inclusive) is skipped.
            Limit: query.limit + 1,
          }),
        );
        return { items: out.Items ?? [], more: out.LastEvaluatedKey !== undefined };
      }),
    );
    const entries = pages
      .flatMap((page) => page.items)
      .map((item) => ({ at: String(item[STATE_INDEX_RANGE]), key: String(item[KEY]) }))
      .filter((e) => e.key.startsWith('msg#') && (query.cursor === undefined || e.at < upper))
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    const page = entries.slice(0, query.limit);
    const more = entries.length > query.limit || pages.some((p) => p.more);
    const last = page.at(-1);
    return {
      ids: page.map((e) => e.key.slice(4)),
      ...(more && last ? { cursor: encodeCursor(last.at) } : {}),
    };
  }
}

/** The highest range key of a record created at or before `until` (ids are A-Z a-z 0-9 _ -, all below "~"). */
const rangeEnd = (until: string | undefined): string => `${until ?? '9999'}#~`;

/** The states a message can be listed under (the index partitions). */
export const LISTED_STATES: readonly MessageState[] = [
  'queued',
  'scheduled',
  'deferred',
  'sent',
  'partially_sent',
  'failed',
  'cancelled',
];

/** A ledger item (as DynamoDB holds it, e.g. a stream image) → its status record and version number;
 *  undefined for the table's other items (idempotency keys, relay state). */
export function statusRecordOfItem(
  item: Record<string, unknown>,
): { record: StatusRecord; version: number } | undefined {
  const key = item[KEY];
  if (typeof key !== 'string' || !key.startsWith('msg#')) return undefined;
  return { record: toVersioned(item).value, version: Number(item.v) };
}

function toVersioned(item: Record<string, unknown>): Versioned<StatusRecord> {
  const value: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(item)) if (!ITEM_ONLY.has(field)) value[field] = v;
  if (typeof item[NESTED] === 'string') Object.assign(value, JSON.parse(item[NESTED]));
  const listState = typeof item[STATE_INDEX_HASH] === 'string' ? item[STATE_INDEX_HASH] : 'queued';
  return {
    value: value as unknown as StatusRecord,
    version: versionToken(Number(item.v), listState as MessageState),
  };
}

/**
 * The version a writer read, as the token it hands back to update(): the item's version number and the
 * index partition it was listed under (which a claim keeps, and which the record itself does not say).
 */
const versionToken = (v: number, listState: MessageState): string => `${v}.${listState}`;

function parseVersionToken(token: string): { v: number; listState: MessageState } {
  const match = /^(\d+)\.([a-z_]+)$/.exec(token);
  if (!match || !(LISTED_STATES as readonly string[]).includes(match[2]!))
    throw new Error(`not a version this ledger handed out: ${JSON.stringify(token)}`);
  return { v: Number(match[1]), listState: match[2] as MessageState };
}

function isConditionFailure(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'ConditionalCheckFailedException';
}

const CURSOR_PREFIX = 'c1.';

/** The cursor is opaque to callers: a versioned, base64url wrapping of an index range key. */
const encodeCursor = (at: string): string => CURSOR_PREFIX + Buffer.from(at, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  if (cursor.startsWith(CURSOR_PREFIX)) {
    const at = Buffer.from(cursor.slice(CURSOR_PREFIX.length), 'base64url').toString('utf8');
    // `<createdAt>#<id>`, exactly as the ledger writes it: anything else is not a cursor this API made.
    if (/^\d{4}-\d\d-\d\dT[\d:.]+Z#[A-Za-z0-9_-]{1,128}$/.test(at)) return at;
  }
  throw new InvalidCursorError('cursor is not one this API returned');
}

export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR';
}
