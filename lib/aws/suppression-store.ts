// The suppression list in the ledger table: one item per address (`pk = sup#<address>`, `*@domain` for a
// domain), listed through the state index under `suppressed#<source>`, newest first. No TTL: an address
// stays suppressed until it is removed.
import {
  BatchGetCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  SUPPRESSION_SOURCES,
  type SuppressionEntry,
  type SuppressionPage,
  type SuppressionSource,
  type SuppressionStore,
  suppressionKeysOf,
} from '../delivery/suppression.ts';
import { BATCH_GET_LIMIT, chunked, inRounds } from './batch-calls.ts';
import { InvalidCursorError } from './ledger-store.ts';
import { KEY, STATE_INDEX, STATE_INDEX_HASH, STATE_INDEX_RANGE, suppressionItemKey } from './ledger-table.ts';

const ENTRY_FIELDS = ['address', 'source', 'reason', 'reply', 'messageId', 'createdAt'] as const;
const CURSOR_PREFIX = 's1.';

const partitionOf = (source: SuppressionSource): string => `suppressed#${source}`;

export class DynamoSuppressionStore implements SuppressionStore {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async get(address: string): Promise<SuppressionEntry | undefined> {
    const { Item } = await this.documents.send(
      new GetCommand({
        TableName: this.table,
        Key: { [KEY]: suppressionItemKey(address) },
        ConsistentRead: true,
      }),
    );
    return Item ? toEntry(Item) : undefined;
  }

  async matching(addresses: readonly string[]): Promise<Map<string, SuppressionEntry>> {
    const found = await this.getMany([...new Set(addresses.flatMap(suppressionKeysOf))]);
    const matches = new Map<string, SuppressionEntry>();
    for (const address of addresses) {
      const [own, domain] = suppressionKeysOf(address);
      const entry = found.get(own) ?? found.get(domain);
      if (entry) matches.set(address, entry);
    }
    return matches;
  }

  async put(entry: SuppressionEntry): Promise<void> {
    await this.documents.send(new PutCommand({ TableName: this.table, Item: toItem(entry) }));
  }

  async add(entry: SuppressionEntry): Promise<boolean> {
    try {
      await this.documents.send(
        new PutCommand({
          TableName: this.table,
          Item: toItem(entry),
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': KEY },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  async remove(address: string): Promise<void> {
    await this.documents.send(
      new DeleteCommand({ TableName: this.table, Key: { [KEY]: suppressionItemKey(address) } }),
    );
  }

  /** Each source is an index partition: each gives its newest `limit` + 1 keys below the cursor, merged. */
  async list(query: {
    source?: SuppressionSource;
    limit: number;
    cursor?: string;
  }): Promise<SuppressionPage> {
    const upper = query.cursor === undefined ? '~' : decodeCursor(query.cursor);
    const sources = query.source ? [query.source] : SUPPRESSION_SOURCES;
    const pages = await Promise.all(
      sources.map(async (source) => {
        const out = await this.documents.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: STATE_INDEX,
            KeyConditionExpression: '#s = :s AND #at < :hi',
            ExpressionAttributeNames: { '#s': STATE_INDEX_HASH, '#at': STATE_INDEX_RANGE },
            ExpressionAttributeValues: { ':s': partitionOf(source), ':hi': upper },
            ScanIndexForward: false,
            Limit: query.limit + 1,
          }),
        );
        return { items: out.Items ?? [], more: out.LastEvaluatedKey !== undefined };
      }),
    );
    const keys = pages
      .flatMap((page) => page.items)
      .map((item) => ({ at: String(item[STATE_INDEX_RANGE]), key: String(item[KEY]) }))
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    const page = keys.slice(0, query.limit);
    const more = keys.length > query.limit || pages.some((p) => p.more);
    const found = await this.getMany(page.map((k) => k.key.slice(4)));
    const last = page.at(-1);
    return {
      // An entry removed between the index read and the item read is simply not listed.
      entries: page.flatMap((k) => found.get(k.key.slice(4)) ?? []),
      ...(more && last ? { cursor: CURSOR_PREFIX + Buffer.from(last.at, 'utf8').toString('base64url') } : {}),
    };
  }

  private async getMany(addresses: readonly string[]): Promise<Map<string, SuppressionEntry>> {
    const found = new Map<string, SuppressionEntry>();
    await Promise.all(
      chunked(addresses, BATCH_GET_LIMIT).map((chunk) =>
        inRounds(
          chunk.map((address): Record<string, unknown> => ({ [KEY]: suppressionItemKey(address) })),
          'keys',
          async (keys) => {
            const out = await this.documents.send(
              new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
            );
            for (const item of out.Responses?.[this.table] ?? []) {
              const entry = toEntry(item);
              found.set(entry.address, entry);
            }
            return (out.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined) ?? [];
          },
        ),
      ),
    );
    return found;
  }
}

function toItem(entry: SuppressionEntry): Record<string, unknown> {
  const item: Record<string, unknown> = {
    [KEY]: suppressionItemKey(entry.address),
    [STATE_INDEX_HASH]: partitionOf(entry.source),
    [STATE_INDEX_RANGE]: `${entry.createdAt}#${entry.address}`,
  };
  for (const field of ENTRY_FIELDS) if (entry[field] !== undefined) item[field] = entry[field];
  return item;
}

function toEntry(item: Record<string, unknown>): SuppressionEntry {
  const entry: Record<string, unknown> = {};
  for (const field of ENTRY_FIELDS) if (item[field] !== undefined) entry[field] = item[field];
  return entry as unknown as SuppressionEntry;
}

function decodeCursor(cursor: string): string {
  if (cursor.startsWith(CURSOR_PREFIX)) {
    const at = Buffer.from(cursor.slice(CURSOR_PREFIX.length), 'base64url').toString('utf8');
    if (/^\d{4}-\d\d-\d\dT[\d:.]+Z#\S+@\S+$/.test(at)) return at;
  }
  throw new InvalidCursorError('cursor is not one this API returned');
}
