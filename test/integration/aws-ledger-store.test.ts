// S3StatusStore against moto: the ledger is created once and only replaced by the holder of the current ETag.
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { CorruptObjectError, S3StatusStore } from '../../lib/aws/index.ts';
import { InvalidKeyError } from '../../lib/aws/keys.ts';
import { type StatusRecord, VersionConflictError } from '../../lib/delivery/ports.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;
let store: S3StatusStore;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'));
  store = new S3StatusStore(resources.clients.s3, resources.bucket);
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

describe('S3StatusStore', () => {
  it('creates messages/<id>.json and reads it back with its version', async () => {
    const created = await store.create(record());

    const read = await store.get(created.value.id);

    expect(read).toEqual(created);
    const object = await resources.clients.s3.send(
      new GetObjectCommand({ Bucket: resources.bucket, Key: `messages/${created.value.id}.json` }),
    );
    expect(object.ContentType).toBe('application/json');
    expect(JSON.parse(await object.Body!.transformToString())).toEqual(created.value);
  });

  it('refuses to create a record that exists', async () => {
    const first = await store.create(record());

    await expect(store.create({ ...first.value, state: 'sent' })).rejects.toBeInstanceOf(
      VersionConflictError,
    );
    expect((await store.get(first.value.id))?.value.state).toBe('queued');
  });

  it('updates at the current version and refuses a stale one', async () => {
    const created = await store.create(record());
    const updated = await store.update({ ...created.value, state: 'sending', attempts: 1 }, created.version);
    expect(updated.version).not.toBe(created.version);

    await expect(store.update({ ...created.value, state: 'failed' }, created.version)).rejects.toBeInstanceOf(
      VersionConflictError,
    );
    expect((await store.get(created.value.id))?.value.state).toBe('sending');
  });

  it('lets exactly one of several concurrent updates from the same version win', async () => {
    const created = await store.create(record());
    const owners = Array.from({ length: 8 }, (_, i) => `worker-${i}`);

    const results = await Promise.allSettled(
      owners.map((owner) =>
        store.update(
          { ...created.value, state: 'sending', lease: { owner, until: new Date().toISOString() } },
          created.version,
        ),
      ),
    );

    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const losers = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(winners).toHaveLength(1);
    for (const loser of losers) expect(loser).toBeInstanceOf(VersionConflictError);
    const stored = await store.get(created.value.id);
    expect(stored?.value.lease?.owner).toBe(winners[0]!.value.lease?.owner);
  });

  it('treats an update of a record that no longer exists as a lost race', async () => {
    const gone = record();
    await expect(store.update(gone, '"0123456789abcdef0123456789abcdef"')).rejects.toBeInstanceOf(
      VersionConflictError,
    );
  });

  it('answers undefined for an unknown id and for an id that cannot be a key', async () => {
    expect(await store.get('never-stored')).toBeUndefined();
    expect(await store.get('../idempotency/x')).toBeUndefined();
    await expect(store.create(record({ id: 'a/b' }))).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('reports a record that is not JSON as corrupt', async () => {
    await resources.clients.s3.send(
      new PutObjectCommand({ Bucket: resources.bucket, Key: 'messages/broken.json', Body: '{"id": "bro' }),
    );
    await expect(store.get('broken')).rejects.toBeInstanceOf(CorruptObjectError);
  });
});
