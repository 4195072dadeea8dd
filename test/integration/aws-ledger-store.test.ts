// DynamoLedger against moto (DynamoDB): a record is created once and then changed only by the holder of the
// version it read; many records come back in one call whatever their number; the state index lists messages
// by state, newest first; every item carries its TTL.
//
// Atomicity: DynamoDB evaluates a ConditionExpression and applies the write as one step, so of two writers
// holding the same version exactly one wins and the other gets ConditionalCheckFailed (VersionConflictError)
// — unlike moto's S3 conditional writes (If-Match / If-None-Match), which check and write in separate steps,
// so two racing writers can both succeed there. moto 5.2.5's DynamoDB has the same gap on its own; the
// launcher (scripts/local/moto-launcher.py) serialises its DynamoDB writes so that it behaves as the service
// does, and the racing tests below hold against it as they do against AWS.
import { BatchGetCommand, BatchWriteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoLedger, ensureLedgerTable, InvalidCursorError, LISTED_STATES } from '../../lib/aws/index.ts';
import { messageKey } from '../../lib/aws/ledger-table.ts';
import { type MessageState, type StatusRecord, VersionConflictError } from '../../lib/delivery/ports.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

const RETENTION_DAYS = 30;
let resources: TestResources;
let ledger: DynamoLedger;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  ledger = new DynamoLedger(resources.clients.documents, resources.table, RETENTION_DAYS);
});

let counter = 0;
function record(overrides: Partial<StatusRecord> = {}): StatusRecord {
  const now = new Date().toISOString();
  return {
    id: `msg-${++counter}-${Date.now()}`,
    state: 'queued',
    createdAt: now,
    updatedAt: now,
    messageId: '<m@smtpq.local>',
    from: 'alice@example.com',
    recipients: [{ address: 'bob@example.org', kind: 'to', state: 'queued', updatedAt: now }],
    attempts: 0,
    transcripts: [],
    ...overrides,
  };
}

/** The item as DynamoDB holds it, with the attributes the store keeps out of the record. */
async function rawItem(id: string, table = resources.table): Promise<Record<string, unknown> | undefined> {
  const { Item } = await resources.clients.documents.send(
    new GetCommand({ TableName: table, Key: { pk: messageKey(id) }, ConsistentRead: true }),
  );
  return Item;
}

describe('DynamoLedger create and get', () => {
  it('stores the record under msg#<id> at version 1 and reads it back as it was written', async () => {
    const written = record({ subject: 'Hi', tags: { campaign: 'spring' } });

    const created = await ledger.create(written);
    const read = await ledger.get(written.id);

    expect(created).toEqual({ value: written, version: '1.queued' });
    expect(read).toEqual({ value: written, version: '1.queued' });
    const item = await rawItem(written.id);
    expect(item).toMatchObject({
      pk: `msg#${written.id}`,
      v: 1,
      listState: 'queued',
      listAt: `${written.createdAt}#${written.id}`,
      state: 'queued',
      subject: 'Hi',
    });
    // The lists and maps are one JSON string attribute; the scalars stay attributes of their own.
    expect(JSON.parse(String(item?.nested))).toEqual({
      recipients: written.recipients,
      transcripts: written.transcripts,
      tags: { campaign: 'spring' },
    });
    expect(item).not.toHaveProperty('recipients');
  });

  it('sets expiresAt to createdAt + RETENTION_DAYS (epoch seconds) on the item', async () => {
    const createdAt = '2030-05-06T07:08:09.999Z';
    const shortLived = new DynamoLedger(resources.clients.documents, resources.table, 7);
    const a = record({ createdAt });
    const b = record({ createdAt });

    await ledger.create(a);
    await shortLived.create(b);

    const seconds = Math.floor(Date.parse(createdAt) / 1000);
    expect((await rawItem(a.id))?.expiresAt).toBe(seconds + 30 * 86_400);
    expect((await rawItem(b.id))?.expiresAt).toBe(seconds + 7 * 86_400);
  });

  it('is create-only: a second create of the id fails with VersionConflictError and changes nothing', async () => {
    const first = await ledger.create(record());

    await expect(ledger.create({ ...first.value, state: 'sent' })).rejects.toBeInstanceOf(
      VersionConflictError,
    );
    expect(await ledger.get(first.value.id)).toEqual(first);
  });

  it('lets exactly one of several concurrent creates of one id succeed', async () => {
    const base = record();

    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, n) => ledger.create({ ...base, subject: `creator ${n}` })),
    );

    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(winners).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflictError);
    expect((await ledger.get(base.id))?.value.subject).toBe(winners[0]!.value.subject);
  });

  it('answers undefined for an unknown id and for an id that cannot be a message id', async () => {
    expect(await ledger.get('never-stored')).toBeUndefined();
    expect(await ledger.get('../idem#x')).toBeUndefined();
    expect(await ledger.get('')).toBeUndefined();
  });
});

describe('DynamoLedger update', () => {
  it('updates at the version it read, returns the next version, and refuses the stale one', async () => {
    const created = await ledger.create(record());

    const updated = await ledger.update({ ...created.value, state: 'sending', attempts: 1 }, created.version);

    expect(updated.version).toBe('2.queued'); // the claim stays listed as queued
    expect(await ledger.get(created.value.id)).toEqual(updated);
    await expect(
      ledger.update({ ...created.value, state: 'failed' }, created.version),
    ).rejects.toBeInstanceOf(VersionConflictError);
    expect((await ledger.get(created.value.id))?.value.state).toBe('sending');
    const next = await ledger.update({ ...updated.value, state: 'sent' }, updated.version);
    expect(next.version).toBe('3.sent');
  });

  it('lets exactly one of two workers racing from the same version win; the other gets VersionConflictError', async () => {
    // Round after round, so a check-then-write race in the emulator would show.
    for (let round = 0; round < 10; round++) {
      const created = await ledger.create(record());
      const until = new Date(Date.now() + 60_000).toISOString();

      const results = await Promise.allSettled(
        ['worker-a', 'worker-b'].map((owner) =>
          ledger.update(
            { ...created.value, state: 'sending', attempts: 1, lease: { owner, until } },
            created.version,
          ),
        ),
      );

      const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const losers = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(1);
      expect(losers[0]).toBeInstanceOf(VersionConflictError);
      const stored = await ledger.get(created.value.id);
      expect(stored).toEqual(winners[0]);
      expect(stored?.version).toBe('2.queued');
    }
  });

  it('lets exactly one of eight concurrent updates from one version win', async () => {
    const created = await ledger.create(record());
    const owners = Array.from({ length: 8 }, (_, i) => `worker-${i}`);

    const results = await Promise.allSettled(
      owners.map((owner) =>
        ledger.update(
          { ...created.value, state: 'sending', lease: { owner, until: new Date().toISOString() } },
          created.version,
        ),
      ),
    );

    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(winners).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflictError);
    expect((await ledger.get(created.value.id))?.value.lease?.owner).toBe(winners[0]!.value.lease?.owner);
  });

  it('treats an update of a record that does not exist as a lost race, and creates nothing', async () => {
    const gone = record();

    await expect(ledger.update(gone, '1.queued')).rejects.toBeInstanceOf(VersionConflictError);

    expect(await rawItem(gone.id)).toBeUndefined();
  });

  it('drops the lease, nextAttemptAt and error when the new version has none, and keeps the rest', async () => {
    const created = await ledger.create(record({ subject: 'kept' }));
    const claimed = await ledger.update(
      {
        ...created.value,
        state: 'deferred',
        attempts: 1,
        nextAttemptAt: new Date(Date.now() + 300_000).toISOString(),
        lease: { owner: 'w', until: new Date().toISOString() },
        error: 'try later',
      },
      created.version,
    );
    const { lease: _l, nextAttemptAt: _n, error: _e, ...settled } = claimed.value;

    const sent = await ledger.update({ ...settled, state: 'sent', attempts: 2 }, claimed.version);

    const stored = await ledger.get(created.value.id);
    expect(stored).toEqual(sent);
    expect(stored?.value).not.toHaveProperty('lease');
    expect(stored?.value).not.toHaveProperty('nextAttemptAt');
    expect(stored?.value).not.toHaveProperty('error');
    expect(stored?.value.subject).toBe('kept');
    // The TTL stays what create set: an update never extends the record's life.
    expect((await rawItem(created.value.id))?.expiresAt).toBe(
      Math.floor(Date.parse(created.value.createdAt) / 1000) + RETENTION_DAYS * 86_400,
    );
  });
});

describe('DynamoLedger createMany', () => {
  it('writes 60 records in BatchWriteItem calls of at most 25, each then readable at version 1', async () => {
    const documents = resources.clients.documents;
    const putsPerCall: number[] = [];
    const counting = new DynamoLedger(
      {
        send: (command: unknown) => {
          if (command instanceof BatchWriteCommand)
            putsPerCall.push(command.input.RequestItems![resources.table]!.length);
          return documents.send(command as never);
        },
      } as typeof documents,
      resources.table,
      RETENTION_DAYS,
    );
    const written = Array.from({ length: 60 }, (_, n) => record({ subject: `bulk ${n}` }));

    const failed = await counting.createMany(written);

    expect(failed).toEqual([]);
    expect(putsPerCall.sort((a, b) => b - a)).toEqual([25, 25, 10]);
    const found = await ledger.getMany(written.map((r) => r.id));
    for (const r of written) expect(found.get(r.id)).toEqual({ value: r, version: '1.queued' });
    // The same item as create() writes: index keys and expiry included.
    expect(await rawItem(written[0]!.id)).toMatchObject({
      v: 1,
      listState: 'queued',
      listAt: `${written[0]!.createdAt}#${written[0]!.id}`,
    });
  });

  it('reports every record it could not write, with the error, instead of throwing', async () => {
    const missingTable = new DynamoLedger(resources.clients.documents, 'no-such-table', RETENTION_DAYS);
    const written = [record(), record()];

    const failed = await missingTable.createMany(written);

    expect(failed.map((f) => f.id)).toEqual(written.map((r) => r.id));
    expect(failed[0]!.error).toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('DynamoLedger getMany', () => {
  it('reads 250 records (three BatchGetItem calls of at most 100 keys) and leaves missing ids out', async () => {
    // Prepare: 250 records, and a client that counts the keys of each BatchGetItem call.
    const stored = Array.from({ length: 250 }, () => record());
    await Promise.all(stored.map((r) => ledger.create(r)));
    const documents = resources.clients.documents;
    const keysPerCall: number[] = [];
    const counting = new DynamoLedger(
      {
        send: (command: unknown) => {
          if (command instanceof BatchGetCommand) {
            keysPerCall.push(command.input.RequestItems![resources.table]!.Keys!.length);
          }
          return documents.send(command as never);
        },
      } as typeof documents,
      resources.table,
      RETENTION_DAYS,
    );
    const missing = ['missing-1', 'missing-2', 'missing-3'];
    const ids = [...stored.map((r) => r.id), ...missing, stored[0]!.id, 'not/an/id'];

    // Act
    const found = await counting.getMany(ids);

    // Assess
    expect(found.size).toBe(250);
    for (const r of stored) expect(found.get(r.id)).toEqual({ value: r, version: '1.queued' });
    for (const id of missing) expect(found.has(id)).toBe(false);
    expect(keysPerCall.sort((a, b) => b - a)).toEqual([100, 100, 53]);
  });

  it('returns each record at its current version', async () => {
    const a = await ledger.create(record());
    const b = await ledger.create(record());
    const a2 = await ledger.update({ ...a.value, state: 'sending' }, a.version);

    const found = await ledger.getMany([a.value.id, b.value.id]);

    expect(found.get(a.value.id)).toEqual(a2);
    expect(found.get(b.value.id)).toEqual(b);
  });

  it('answers an empty map for no ids and for ids none of which exist', async () => {
    expect((await ledger.getMany([])).size).toBe(0);
    expect((await ledger.getMany(['nobody-1', 'nobody-2'])).size).toBe(0);
  });
});

describe('DynamoLedger state index', () => {
  // A table of its own: the index holds only what these tests put in it.
  let index: DynamoLedger;
  beforeAll(async () => {
    const table = `${resources.table}-index`;
    await ensureLedgerTable(resources.clients.dynamodb, table);
    index = new DynamoLedger(resources.clients.documents, table, RETENTION_DAYS);
  });

  /** Every id listed under `state`, page after page of `limit`. */
  async function listAll(state: MessageState, limit: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await index.listIds({ states: [state], limit, ...(cursor ? { cursor } : {}) });
      expect(page.ids.length).toBeLessThanOrEqual(limit);
      ids.push(...page.ids);
      cursor = page.cursor;
      pages++;
    } while (cursor && pages < 20);
    return { ids, pages };
  }

  /** Records created a second apart, the last one newest. */
  const aged = (n: number, prefix: string) =>
    Array.from({ length: n }, (_, i) =>
      record({ id: `${prefix}-${i}`, createdAt: new Date(Date.now() - (n - i) * 1000).toISOString() }),
    );

  it('lists the messages of a state newest first, page by page with a cursor', async () => {
    const records = aged(7, 'list');
    for (const r of records) await index.create(r);

    const first = await index.listIds({ states: ['queued'], limit: 3 });
    const all = await listAll('queued', 3);

    const newestFirst = records.map((r) => r.id).reverse();
    expect(first.ids).toEqual(newestFirst.slice(0, 3));
    expect(first.cursor).toEqual(expect.any(String));
    expect(all.ids).toEqual(newestFirst);
    expect(all.pages).toBeGreaterThanOrEqual(3);
  });

  it('keeps a claimed (sending) message where it was listed, and moves it on an outcome', async () => {
    // Prepare
    const [message] = aged(1, 'moves');
    const created = await index.create(message!);

    // Act + Assess: the claim changes no index key.
    const claimed = await index.update(
      { ...created.value, state: 'sending', lease: { owner: 'w', until: new Date().toISOString() } },
      created.version,
    );
    expect((await listAll('queued', 50)).ids).toContain(message!.id);
    expect((await listAll('sending', 50)).ids).toEqual([]);

    // A deferral moves it to deferred, a later outcome to sent; it is listed under one state at a time.
    const { lease: _lease, ...unleased } = claimed.value;
    const deferred = await index.update({ ...unleased, state: 'deferred' }, claimed.version);
    expect((await listAll('queued', 50)).ids).not.toContain(message!.id);
    expect((await listAll('deferred', 50)).ids).toEqual([message!.id]);
    const reclaimed = await index.update({ ...deferred.value, state: 'sending' }, deferred.version);
    expect((await listAll('deferred', 50)).ids).toEqual([message!.id]);
    await index.update({ ...reclaimed.value, state: 'sent' }, reclaimed.version);
    const listed = await Promise.all(
      LISTED_STATES.map(async (s) => [s, (await listAll(s, 50)).ids] as const),
    );
    const where = listed.filter(([, ids]) => ids.includes(message!.id)).map(([s]) => s);
    expect(where).toEqual(['sent']);
  });

  it('lists an outcome under its state with the other messages of that state, newest first', async () => {
    const records = aged(3, 'outcome');
    const created = await Promise.all(records.map((r) => index.create(r)));

    for (const c of created) await index.update({ ...c.value, state: 'failed', error: 'x' }, c.version);

    expect((await listAll('failed', 2)).ids).toEqual(records.map((r) => r.id).reverse());
  });

  it('merges several states newest first across pages, and bounds a page by creation time', async () => {
    // Prepare: five records a second apart, alternately queued and failed.
    const records = aged(5, 'merge');
    const created = await Promise.all(records.map((r) => index.create(r)));
    await Promise.all(
      created
        .filter((_, i) => i % 2 === 1)
        .map((c) => index.update({ ...c.value, state: 'failed', error: 'x' }, c.version)),
    );
    const newestFirst = records.map((r) => r.id).reverse();
    const mine = (ids: string[]) => ids.filter((id) => id.startsWith('merge-'));

    // Act: pages of two over both states, and a window of the middle three.
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await index.listIds({
        states: ['queued', 'failed'],
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      ids.push(...page.ids);
      cursor = page.cursor;
    } while (cursor);
    const window = await index.listIds({
      states: ['queued', 'failed'],
      limit: 50,
      since: records[1]!.createdAt,
      until: records[3]!.createdAt,
    });

    // Assess
    expect(mine(ids)).toEqual(newestFirst);
    expect(mine(window.ids)).toEqual([records[3]!.id, records[2]!.id, records[1]!.id]);
  });

  it('answers an empty page for a state nothing is in, and refuses a cursor it did not hand out', async () => {
    expect(await index.listIds({ states: ['partially_sent'], limit: 10 })).toEqual({ ids: [] });
    await expect(
      index.listIds({ states: ['queued'], limit: 10, cursor: 'not-a-cursor' }),
    ).rejects.toBeInstanceOf(InvalidCursorError);
  });
});
