// DynamoIdempotencyStore against moto (DynamoDB): one key, one winner, even when requests race; the losers
// learn the holder's id and fingerprint; a claim expires after 24 h whether or not DynamoDB's TTL has deleted
// it yet; only the holder can release a key. (The conditional Put is atomic in DynamoDB, and in the moto the
// tests run, whose launcher serialises DynamoDB writes: see aws-ledger-store.test.ts.)
import { createHash } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoIdempotencyStore, IDEMPOTENCY_TTL_MS } from '../../lib/aws/index.ts';
import { idempotencyItemKey } from '../../lib/aws/ledger-table.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
let store: DynamoIdempotencyStore;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  store = new DynamoIdempotencyStore(resources.clients.documents, resources.table);
});

const later = (ms: number) => new Date(Date.now() + ms);

async function rawClaim(clientKey: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await resources.clients.documents.send(
    new GetCommand({
      TableName: resources.table,
      Key: { pk: idempotencyItemKey(clientKey) },
      ConsistentRead: true,
    }),
  );
  return Item;
}

describe('DynamoIdempotencyStore', () => {
  it('claims a new key as idem#<sha256> holding id, createdAt, fingerprint and a 24 h expiresAt', async () => {
    const now = new Date('2031-01-02T03:04:05.678Z');

    expect(await store.claim('key-1', 'id-a', now, 'sha-a')).toEqual({ claimed: true });
    const second = await store.claim('key-1', 'id-b', now, 'sha-b');

    expect(second).toEqual({
      claimed: false,
      id: 'id-a',
      createdAt: now.toISOString(),
      fingerprint: 'sha-a',
    });
    const sha = createHash('sha256').update('key-1').digest('hex');
    expect(sha).toBe('be2974546978e3739e6d6da85c4be9f334ce32df2b9fd4b6ff1b55c0d57e9d44');
    expect(await rawClaim('key-1')).toEqual({
      pk: `idem#${sha}`,
      id: 'id-a',
      createdAt: now.toISOString(),
      fingerprint: 'sha-a',
      expiresAt: Math.ceil((now.getTime() + IDEMPOTENCY_TTL_MS) / 1000),
    });
  });

  it('stores any key text under a fixed-length hash, never as given', async () => {
    const key = `ünï/../${'k'.repeat(250)}`;

    await store.claim(key, 'id-long');

    const item = await rawClaim(key);
    expect(item?.pk).toMatch(/^idem#[0-9a-f]{64}$/);
    expect(JSON.stringify(item)).not.toContain('kkkk');
  });

  it('lets exactly one of many concurrent claims of one key win; all others see the winner', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `race-${i}`);

    const results = await Promise.all(ids.map((id) => store.claim('racy-key', id, new Date(), `fp-${id}`)));

    const winners = ids.filter((_, i) => results[i]!.claimed);
    expect(winners).toHaveLength(1);
    for (const result of results.filter((r) => !r.claimed)) {
      expect(result).toMatchObject({ id: winners[0], fingerprint: `fp-${winners[0]}` });
    }
    expect((await rawClaim('racy-key'))?.id).toBe(winners[0]);
  });

  it('keeps a claim younger than 24 h', async () => {
    await store.claim('young-key', 'first');

    expect(await store.claim('young-key', 'second', later(IDEMPOTENCY_TTL_MS - 60_000))).toMatchObject({
      claimed: false,
      id: 'first',
    });
  });

  it('frees a claim older than 24 h while its item still exists (TTL deletes it only eventually)', async () => {
    // Prepare: a claim made 25 h ago; its expiresAt has passed, but the item is still in the table, as it
    // can be for up to two days in DynamoDB (moto never deletes it).
    await store.claim('expired-key', 'yesterday', new Date(Date.now() - IDEMPOTENCY_TTL_MS - 3_600_000));
    const before = await rawClaim('expired-key');
    expect(before?.id).toBe('yesterday');
    expect(Number(before?.expiresAt)).toBeLessThan(Date.now() / 1000);

    // Act
    const result = await store.claim('expired-key', 'today', new Date(), 'sha-today');

    // Assess
    expect(result).toEqual({ claimed: true });
    expect(await rawClaim('expired-key')).toMatchObject({ id: 'today', fingerprint: 'sha-today' });
  });

  it('lets only one of several requests take over an expired claim', async () => {
    await store.claim('old-key', 'first');
    const afterTtl = later(IDEMPOTENCY_TTL_MS + 1000);

    const results = await Promise.all(
      ['second', 'third', 'fourth'].map((id) => store.claim('old-key', id, afterTtl)),
    );

    expect(results.filter((r) => r.claimed)).toHaveLength(1);
    const holder = await store.claim('old-key', 'fifth', afterTtl);
    expect(holder.claimed).toBe(false);
    expect(['second', 'third', 'fourth']).toContain(!holder.claimed && holder.id);
  });

  it('reads a claim without a fingerprint as a claim with none', async () => {
    // Prepare: a claim item of { id, createdAt } only (as a claim made without a fingerprint is stored).
    await resources.clients.documents.send(
      new PutCommand({
        TableName: resources.table,
        Item: {
          pk: idempotencyItemKey('bare-key'),
          id: 'bare-id',
          createdAt: new Date().toISOString(),
          expiresAt: Math.ceil((Date.now() + IDEMPOTENCY_TTL_MS) / 1000),
        },
      }),
    );

    const loser = await store.claim('bare-key', 'new-id', new Date(), 'sha-new');

    expect(loser).toEqual({ claimed: false, id: 'bare-id', createdAt: expect.any(String) });
  });

  it('releases a key only for the id that holds it', async () => {
    await store.claim('release-key', 'holder');

    expect(await store.release('release-key', 'someone-else')).toBe(false);
    expect(await store.claim('release-key', 'other')).toMatchObject({ claimed: false, id: 'holder' });
    expect(await store.release('release-key', 'holder')).toBe(true);
    expect(await rawClaim('release-key')).toBeUndefined();
    expect(await store.claim('release-key', 'next')).toEqual({ claimed: true });
    expect(await store.release('never-claimed', 'anyone')).toBe(false);
  });

  it('lets exactly one of two racing releases of one holder succeed', async () => {
    await store.claim('double-release', 'holder');

    const results = await Promise.all([
      store.release('double-release', 'holder'),
      store.release('double-release', 'holder'),
    ]);

    expect(results.sort()).toEqual([false, true]);
  });
});
