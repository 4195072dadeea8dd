// S3IdempotencyStore against moto: one key, one winner, even when requests race; expired claims are reusable.

import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { IDEMPOTENCY_TTL_MS, S3IdempotencyStore } from '../../lib/aws/index.ts';
import { idempotencyKey } from '../../lib/aws/keys.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
let store: S3IdempotencyStore;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  store = new S3IdempotencyStore(resources.clients.s3, resources.bucket);
});

const later = (ms: number) => new Date(Date.now() + ms);

describe('S3IdempotencyStore', () => {
  it('claims a new key under idempotency/<sha256>.json and returns the holder to a second claim', async () => {
    expect(await store.claim('key-1', 'id-a')).toEqual({ claimed: true });

    const second = await store.claim('key-1', 'id-b');

    expect(second).toMatchObject({ claimed: false, id: 'id-a' });
    // The object is named by sha256("key-1") and holds the claim.
    const object = await resources.clients.s3.send(
      new GetObjectCommand({
        Bucket: resources.bucket,
        Key: 'idempotency/be2974546978e3739e6d6da85c4be9f334ce32df2b9fd4b6ff1b55c0d57e9d44.json',
      }),
    );
    expect(JSON.parse(await object.Body!.transformToString())).toMatchObject({ id: 'id-a' });
  });

  it('lets exactly one of many concurrent claims of one key win; all others see the winner', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `race-${i}`);

    const results = await Promise.all(ids.map((id) => store.claim('racy-key', id)));

    const winners = ids.filter((_, i) => results[i]!.claimed);
    expect(winners).toHaveLength(1);
    for (const result of results) {
      if (!result.claimed) expect(result.id).toBe(winners[0]);
    }
  });

  it('treats a claim older than 24 h as free, and still lets only one request take it over', async () => {
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

  it('keeps a claim younger than 24 h', async () => {
    await store.claim('young-key', 'first');
    expect(await store.claim('young-key', 'second', later(IDEMPOTENCY_TTL_MS - 60_000))).toMatchObject({
      claimed: false,
      id: 'first',
    });
  });

  it('stores the claimant’s fingerprint in the claim and hands it to every loser of a race', async () => {
    const results = await Promise.all(
      ['fp-a', 'fp-b', 'fp-c', 'fp-d'].map((id) => store.claim('fp-key', id, new Date(), `sha-of-${id}`)),
    );

    const winner = ['fp-a', 'fp-b', 'fp-c', 'fp-d'].filter((_, i) => results[i]!.claimed);
    expect(winner).toHaveLength(1);
    for (const result of results.filter((r) => !r.claimed)) {
      expect(result).toMatchObject({ id: winner[0], fingerprint: `sha-of-${winner[0]}` });
    }
  });

  it('reads a claim written without a fingerprint (by an earlier version) as a claim with none', async () => {
    // Prepare: the claim object as the earlier version wrote it, { id, createdAt } only.
    await resources.clients.s3.send(
      new PutObjectCommand({
        Bucket: resources.bucket,
        Key: idempotencyKey('legacy-key'),
        Body: JSON.stringify({ id: 'legacy-id', createdAt: new Date().toISOString() }),
      }),
    );

    const loser = await store.claim('legacy-key', 'new-id', new Date(), 'sha-new');

    expect(loser).toEqual({ claimed: false, id: 'legacy-id', createdAt: expect.any(String) });
  });

  it('releases a key only for the id that holds it', async () => {
    await store.claim('release-key', 'holder');

    expect(await store.release('release-key', 'someone-else')).toBe(false);
    expect(await store.claim('release-key', 'other')).toMatchObject({ claimed: false, id: 'holder' });
    expect(await store.release('release-key', 'holder')).toBe(true);
    expect(await store.claim('release-key', 'next')).toEqual({ claimed: true });
  });
});
