// DynamoDB request units of each call the proxy forwards, estimated from what goes over the wire, because
// moto reports no real ConsumedCapacity and the code's requests are not ours to change.
//
// On-demand pricing counts write request units (WRU: one per started KiB of the larger of the item's old and
// new image; two in a transaction; a failed condition still pays for the existing item; each write a global
// secondary index receives costs its own WRU) and read request units (RRU: one per started 4 KiB of an item,
// strongly consistent; half that eventually consistent; a Query sums the items before rounding; a read
// with a ProjectionExpression still pays for the whole item; an item not found costs the minimum).
//
// To size an item's old and new image the model keeps the last image of every item it saw written: a PutItem
// brings it along; an UpdateItem's comes back in moto's answer (the proxy adds ReturnValues ALL_NEW when the
// caller asked for none, and removes the Attributes again before the caller sees them); an item written
// without a known image is read from moto directly (GetItem, neither counted nor delayed) before the write
// is forwarded, as is the new image where no answer carries it (an update inside TransactWriteItems).
// Sizes follow AWS's rules: attribute name + value (strings in UTF-8, numbers ~1 byte per 2 significant
// digits + 1, binary as decoded, lists and maps 3 bytes + 1 per element).

/** An AttributeValue as DynamoDB's JSON protocol writes it ({ S: 'x' }, { N: '1' }, { M: {...} }, …). */
export type WireValue = Record<string, unknown>;
export type WireItem = Record<string, WireValue>;

export interface DynamoUnits {
  read: number;
  write: number;
  /** WRU of the global secondary indexes. */
  indexWrite: number;
}

const ZERO: DynamoUnits = { read: 0, write: 0, indexWrite: 0 };

const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');

function numberSize(text: string): number {
  const digits = text
    .replace(/^[-+]/, '')
    .replace(/e.*$/i, '')
    .replace('.', '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function binarySize(value: unknown): number {
  if (typeof value === 'string') return Buffer.from(value, 'base64').length;
  if (value instanceof Uint8Array) return value.length;
  return 0;
}

export function valueSize(value: WireValue): number {
  if ('S' in value) return utf8(String(value.S));
  if ('N' in value) return numberSize(String(value.N));
  if ('B' in value) return binarySize(value.B);
  if ('BOOL' in value || 'NULL' in value) return 1;
  if ('SS' in value) return (value.SS as string[]).reduce((n, s) => n + utf8(s), 0);
  if ('NS' in value) return (value.NS as string[]).reduce((n, s) => n + numberSize(s), 0);
  if ('BS' in value) return (value.BS as unknown[]).reduce<number>((n, b) => n + binarySize(b), 0);
  if ('L' in value) return 3 + (value.L as WireValue[]).reduce((n, v) => n + valueSize(v) + 1, 0);
  if ('M' in value) {
    const entries = Object.entries(value.M as WireItem);
    return 3 + entries.reduce((n, [name, v]) => n + utf8(name) + valueSize(v) + 1, 0);
  }
  return 0;
}

export function itemSize(item: WireItem | undefined): number {
  if (!item) return 0;
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += utf8(name) + valueSize(value);
  return size;
}

const writeUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
const readUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / 4096));

interface IndexInfo {
  name: string;
  keys: string[];
  projection: 'ALL' | 'KEYS_ONLY' | 'INCLUDE';
  include: string[];
}

interface TableInfo {
  keys: string[];
  indexes: IndexInfo[];
}

/** One item a write call touches, and what the call does to it. */
interface Touched {
  table: string;
  key: string;
  keyAttributes: WireItem;
  kind: 'put' | 'update' | 'delete' | 'check';
  item?: WireItem;
  before: Promise<WireItem | undefined>;
  /** No image was known and the condition (attribute_not_exists) implied there is none: true unless it fails. */
  assumedNew: boolean;
  /** Part of a TransactWriteItems: twice the units. */
  transactional: boolean;
}

export interface PendingWrite {
  operation: string;
  touched: Touched[];
  /** The request to forward: the caller's, or (UpdateItem without ReturnValues) one that asks for ALL_NEW. */
  body: Buffer;
  /** The new image comes back in the response's Attributes (the caller's ALL_NEW, or ours). */
  returnsNew: boolean;
  /** ReturnValues ALL_NEW was added by us: the Attributes are removed again before the caller sees them. */
  injected: boolean;
}

type Json = Record<string, unknown>;

function parse(body: Buffer): Json {
  try {
    return JSON.parse(body.toString('utf8')) as Json;
  } catch {
    return {};
  }
}

const WRITE_OPERATIONS = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);
const READ_OPERATIONS = new Set(['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems']);

export class DynamoModel {
  private readonly tables = new Map<string, Promise<TableInfo>>();
  /** The same, once described (every table a write names is, before the write is forwarded). */
  private readonly described = new Map<string, TableInfo>();
  private readonly images = new Map<string, Promise<WireItem | undefined>>();
  /**
   * Tables created through the proxy: every write to them has been seen, so a key with no image is known
   * absent and needs no read (a batch's fresh records cost moto a GetItem each otherwise).
   */
  private readonly seenFromCreation = new Set<string>();
  /** Reads from moto the model made itself (not counted as the pipeline's calls). */
  ownReads = 0;
  /** Calls whose units could not be estimated, with why. */
  readonly problems: string[] = [];

  constructor(
    private readonly endpoint: string,
    private readonly region: string,
  ) {}

  /** Forget every image and table (moto was reset). */
  forget(): void {
    this.tables.clear();
    this.images.clear();
    this.seenFromCreation.clear();
  }

  /** A CreateTable went through: the table starts empty, and every write to it passes here. */
  tableCreated(body: Buffer): void {
    const name = parse(body).TableName;
    if (typeof name === 'string') this.seenFromCreation.add(name);
  }

  isWrite(operation: string): boolean {
    return WRITE_OPERATIONS.has(operation);
  }

  isRead(operation: string): boolean {
    return READ_OPERATIONS.has(operation);
  }

  /** Before a write is forwarded: which items it touches, with their images before it. */
  async beforeWrite(operation: string, body: Buffer): Promise<PendingWrite> {
    const request = parse(body);
    const touched: Touched[] = [];
    const add = async (
      table: string,
      kind: Touched['kind'],
      source: { Item?: WireItem; Key?: WireItem; ConditionExpression?: string },
      transactional: boolean,
    ) => {
      const info = await this.table(table);
      const keyAttributes = pick(source.Key ?? source.Item ?? {}, info.keys);
      const key = imageKey(table, keyAttributes, info.keys);
      let before = this.images.get(key);
      let assumedNew = false;
      if (before === undefined) {
        // A create guarded by attribute_not_exists: no old image (if one exists the write fails, and the
        // existing item, read then, is what the failure costs).
        assumedNew =
          this.seenFromCreation.has(table) || /attribute_not_exists/.test(source.ConditionExpression ?? '');
        before = assumedNew ? Promise.resolve(undefined) : this.fetch(table, keyAttributes);
        this.images.set(key, before);
      }
      touched.push({ table, key, keyAttributes, kind, item: source.Item, before, assumedNew, transactional });
    };
    const table = String(request.TableName ?? '');
    if (operation === 'PutItem') await add(table, 'put', request as Json, false);
    if (operation === 'UpdateItem') await add(table, 'update', request as Json, false);
    if (operation === 'DeleteItem') await add(table, 'delete', request as Json, false);
    if (operation === 'BatchWriteItem') {
      for (const [name, requests] of Object.entries((request.RequestItems ?? {}) as Record<string, Json[]>)) {
        for (const r of requests) {
          if (r.PutRequest) await add(name, 'put', r.PutRequest as Json, false);
          else if (r.DeleteRequest) await add(name, 'delete', r.DeleteRequest as Json, false);
        }
      }
    }
    if (operation === 'TransactWriteItems') {
      for (const entry of (request.TransactItems ?? []) as Json[]) {
        const [kind, part] = Object.entries(entry)[0] ?? [];
        const map = { Put: 'put', Update: 'update', Delete: 'delete', ConditionCheck: 'check' } as const;
        const mapped = map[kind as keyof typeof map];
        if (mapped && part) await add(String((part as Json).TableName), mapped, part as Json, true);
      }
    }
    // An UpdateItem's new image comes back in moto's own answer (ReturnValues ALL_NEW, added when the caller
    // asked for none) instead of a read of ours after it: moto's CPU is the bottleneck at 0 ms, and a read
    // per write would slow the very pipeline being measured.
    const returnValues = String(request.ReturnValues ?? 'NONE');
    const injected = operation === 'UpdateItem' && returnValues === 'NONE';
    const body2 = injected ? Buffer.from(JSON.stringify({ ...request, ReturnValues: 'ALL_NEW' })) : body;
    return {
      operation,
      touched,
      body: body2,
      returnsNew: operation === 'UpdateItem' && (injected || returnValues === 'ALL_NEW'),
      injected,
    };
  }

  /**
   * Once the response is back, before the caller sees it: records each item's new image (so the next
   * write to it finds its old one), and resolves to the call's units.
   */
  afterWrite(
    pending: PendingWrite,
    status: number,
    responseBody: Buffer,
  ): { units: Promise<DynamoUnits>; body: Buffer } {
    const response = status < 300 ? parse(responseBody) : {};
    const returned = pending.returnsNew ? (response.Attributes as WireItem | undefined) : undefined;
    let body = responseBody;
    if (pending.injected && status < 300) {
      // The caller asked for no values: it gets none.
      const { Attributes: _, ...rest } = response;
      body = Buffer.from(JSON.stringify(rest));
    }
    // BatchWriteItem: items DynamoDB left unprocessed were not written (nor paid for).
    const unprocessed = new Set<string>();
    for (const [table, requests] of Object.entries(
      (response.UnprocessedItems ?? {}) as Record<string, Json[]>,
    )) {
      const info = this.described.get(table);
      for (const r of requests) {
        const source = (r.PutRequest ?? r.DeleteRequest) as { Item?: WireItem; Key?: WireItem } | undefined;
        if (source && info)
          unprocessed.add(imageKey(table, pick(source.Key ?? source.Item ?? {}, info.keys), info.keys));
      }
    }
    const results = pending.touched.map((t) => {
      const failed = status >= 300 || t.kind === 'check';
      let after: Promise<WireItem | undefined>;
      if (status >= 300 && t.assumedNew) {
        // It existed after all: read it, as what the failure costs and as the image for the next write.
        t.before = this.fetch(t.table, t.keyAttributes);
        this.images.set(t.key, t.before);
        after = t.before;
      } else if (failed) after = t.before;
      else if (t.kind === 'put') after = Promise.resolve(t.item);
      else if (t.kind === 'delete') after = Promise.resolve(undefined);
      else if (returned) after = Promise.resolve(returned);
      else after = this.fetch(t.table, t.keyAttributes);
      if (!failed && !unprocessed.has(t.key)) this.images.set(t.key, after);
      return { t, failed: status >= 300, after };
    });
    const units = (async () => {
      let write = 0;
      let indexWrite = 0;
      for (const { t, failed, after } of results) {
        if (unprocessed.has(t.key)) continue;
        const [old, current] = await Promise.all([t.before, after]);
        const factor = t.transactional ? 2 : 1;
        if (failed || t.kind === 'check') {
          write += factor * writeUnits(itemSize(old));
          continue;
        }
        const bytes = t.kind === 'delete' ? itemSize(old) : Math.max(itemSize(old), itemSize(current));
        write += factor * writeUnits(bytes);
        const info = await this.table(t.table);
        for (const index of info.indexes) indexWrite += indexWrites(index, info.keys, old, current);
      }
      return { read: 0, write, indexWrite };
    })();
    return { units, body };
  }

  /** Read units of a read call, from its request and response. */
  async readCall(
    operation: string,
    requestBody: Buffer,
    status: number,
    responseBody: Buffer,
  ): Promise<DynamoUnits> {
    if (status >= 300) return ZERO;
    const request = parse(requestBody);
    const response = parse(responseBody);
    const factorOf = (consistent: unknown, index?: unknown) => (consistent === true && !index ? 1 : 0.5);
    /** The whole item's size, even when a projection returned part of it. */
    const fullSize = async (table: string, returned: WireItem, projected: boolean) => {
      if (!projected) return itemSize(returned);
      const info = await this.table(table);
      const known = await this.images.get(imageKey(table, pick(returned, info.keys), info.keys));
      return Math.max(itemSize(known), itemSize(returned));
    };
    switch (operation) {
      case 'GetItem': {
        const item = response.Item as WireItem | undefined;
        const size = item
          ? await fullSize(String(request.TableName), item, !!request.ProjectionExpression)
          : 0;
        return { ...ZERO, read: readUnits(size) * factorOf(request.ConsistentRead) };
      }
      case 'BatchGetItem': {
        let read = 0;
        const responses = (response.Responses ?? {}) as Record<string, WireItem[]>;
        const unprocessed = (response.UnprocessedKeys ?? {}) as Record<string, { Keys?: unknown[] }>;
        for (const [table, spec] of Object.entries((request.RequestItems ?? {}) as Record<string, Json>)) {
          const found = responses[table] ?? [];
          const asked = ((spec.Keys as unknown[]) ?? []).length - (unprocessed[table]?.Keys?.length ?? 0);
          let units = Math.max(0, asked - found.length);
          for (const item of found)
            units += readUnits(await fullSize(table, item, !!spec.ProjectionExpression));
          read += units * factorOf(spec.ConsistentRead);
        }
        return { ...ZERO, read };
      }
      case 'Query':
      case 'Scan': {
        const items = (response.Items ?? []) as WireItem[];
        let bytes = items.reduce((n, item) => n + itemSize(item), 0);
        const count = Number(response.Count ?? items.length);
        const scanned = Number(response.ScannedCount ?? count);
        // A filter is applied after the read: the items it dropped were read (and paid for) too.
        if (count > 0 && scanned > count) bytes = (bytes * scanned) / count;
        return { ...ZERO, read: readUnits(bytes) * factorOf(request.ConsistentRead, request.IndexName) };
      }
      case 'TransactGetItems': {
        const responses = (response.Responses ?? []) as Array<{ Item?: WireItem }>;
        return { ...ZERO, read: responses.reduce((n, r) => n + 2 * readUnits(itemSize(r.Item)), 0) };
      }
    }
    return ZERO;
  }

  private table(name: string): Promise<TableInfo> {
    let info = this.tables.get(name);
    if (!info) {
      info = this.call('DescribeTable', { TableName: name }).then((answer) => {
        const table = (answer.Table ?? {}) as Json;
        const keysOf = (schema: unknown) =>
          ((schema as Array<{ AttributeName: string }>) ?? []).map((k) => k.AttributeName);
        return {
          keys: keysOf(table.KeySchema),
          indexes: ((table.GlobalSecondaryIndexes ?? []) as Json[]).map((index) => {
            const projection = (index.Projection ?? {}) as {
              ProjectionType?: string;
              NonKeyAttributes?: string[];
            };
            return {
              name: String(index.IndexName),
              keys: keysOf(index.KeySchema),
              projection: (projection.ProjectionType ?? 'ALL') as IndexInfo['projection'],
              include: projection.NonKeyAttributes ?? [],
            };
          }),
        };
      });
      info.then(
        (resolved) => this.described.set(name, resolved),
        (error: Error) => {
          this.problems.push(`DescribeTable ${name}: ${error.message}`);
          this.tables.delete(name);
        },
      );
      this.tables.set(name, info);
    }
    return info;
  }

  private async fetch(table: string, key: WireItem): Promise<WireItem | undefined> {
    this.ownReads++;
    try {
      const got = await this.call('GetItem', { TableName: table, Key: key, ConsistentRead: true });
      return got.Item as WireItem | undefined;
    } catch (error) {
      this.problems.push(`GetItem ${table}: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** A DynamoDB call straight to moto (not through the proxy): moto checks no signature, only the scope. */
  private async call(operation: string, body: Json): Promise<Json> {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${operation}`,
        authorization: `AWS4-HMAC-SHA256 Credential=test/20260101/${this.region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${response.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as Json;
  }
}

function pick(item: WireItem, names: string[]): WireItem {
  const out: WireItem = {};
  for (const name of names) if (item[name] !== undefined) out[name] = item[name];
  return out;
}

function imageKey(table: string, key: WireItem, names: string[]): string {
  return `${table}\u0000${JSON.stringify(names.map((n) => key[n] ?? null))}`;
}

/** WRU a global secondary index pays for one table write (put, update or delete of its entry). */
export function indexWrites(
  index: IndexInfo,
  tableKeys: string[],
  old: WireItem | undefined,
  current: WireItem | undefined,
): number {
  const inIndex = (item: WireItem | undefined) => !!item && index.keys.every((k) => item[k] !== undefined);
  const projected = (item: WireItem): WireItem => {
    if (index.projection === 'ALL') return item;
    return pick(item, [
      ...new Set([...tableKeys, ...index.keys, ...(index.projection === 'INCLUDE' ? index.include : [])]),
    ]);
  };
  const was = inIndex(old);
  const is = inIndex(current);
  if (!was && !is) return 0;
  if (was && !is) return writeUnits(itemSize(projected(old!)));
  if (!was && is) return writeUnits(itemSize(projected(current!)));
  const keyChanged = index.keys.some((k) => canonical(old![k]) !== canonical(current![k]));
  if (keyChanged) return writeUnits(itemSize(projected(old!))) + writeUnits(itemSize(projected(current!)));
  const changed = canonical(projected(old!)) !== canonical(projected(current!));
  return changed ? writeUnits(itemSize(projected(current!))) : 0;
}

/** JSON with object keys sorted, so two images compare equal whatever order their attributes came in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
