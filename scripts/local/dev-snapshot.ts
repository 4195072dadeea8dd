// Persistence for the dev stack's own moto server, which keeps everything in memory: the bucket (transcripts,
// claim-check payloads) is mirrored to <dir>/s3/ and the ledger table (status records, idempotency keys, the
// relay's rate limit) to <dir>/ledger.jsonl while running and at shutdown; the messages still on the queue and
// the DLQ are saved to <dir>/*.jsonl at shutdown. On the next
// start the new moto gets all of it back. moto's own recorder would replay every request ever made (each poll
// included), so a mirror of the resulting state is smaller and exact.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type AttributeValue, BatchWriteItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
} from '@aws-sdk/client-sqs';
import type { AwsClients } from '../../lib/aws/clients.ts';
import type { BatchReport } from './sqs-poller.ts';

export interface SnapshotTarget {
  clients: AwsClients;
  bucket: string;
  /** The ledger table. */
  table: string;
  queues: { main: string; dlq: string };
  /** Directory of the snapshot, e.g. .smtpq/state. */
  dir: string;
}

interface ObjectEntry {
  etag: string;
  contentType?: string;
}

type Manifest = Record<string, ObjectEntry>;

const QUEUE_FILES = { main: 'queue.jsonl', dlq: 'dlq.jsonl' } as const;

/** An S3 key as a relative file path: each segment percent-encoded, so no key can leave the directory. */
function keyToPath(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      segment === '' || segment === '.' || segment === '..'
        ? encodeURIComponent(`%${segment}`)
        : encodeURIComponent(segment),
    )
    .join(path.sep);
}

async function readManifest(dir: string): Promise<Manifest> {
  try {
    return JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(
      `the dev snapshot in ${dir} is unreadable (${(error as Error).message}); move it away to start fresh`,
    );
  }
}

/** Puts the saved objects and queue messages into the (fresh) emulator. */
export async function restoreSnapshot(
  target: SnapshotTarget,
): Promise<{ objects: number; messages: number }> {
  const { clients, bucket, dir } = target;
  const manifest = await readManifest(dir);
  const keys = Object.keys(manifest);
  await inBatches(keys, 16, async (key) => {
    const body = await readFile(path.join(dir, 's3', keyToPath(key)));
    await clients.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: manifest[key]!.contentType }),
    );
  });
  const items = await restoreTable(target);
  let messages = 0;
  for (const [queue, file] of Object.entries(QUEUE_FILES) as Array<[keyof typeof QUEUE_FILES, string]>) {
    const bodies = await readQueueFile(path.join(dir, file));
    for (let i = 0; i < bodies.length; i += 10) {
      const entries = bodies.slice(i, i + 10).map((body, n) => ({ Id: String(n), MessageBody: body }));
      const result = await clients.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: target.queues[queue], Entries: entries }),
      );
      if (result.Failed?.length)
        throw new Error(`restoring ${file}: SQS refused ${result.Failed.length} messages`);
    }
    messages += bodies.length;
    await rm(path.join(dir, file), { force: true });
  }
  return { objects: keys.length + items, messages };
}

const TABLE_FILE = 'ledger.jsonl';

/** Writes the saved ledger items into the (fresh) table; returns how many. */
async function restoreTable(target: SnapshotTarget): Promise<number> {
  let text: string;
  try {
    text = await readFile(path.join(target.dir, TABLE_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  const items = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, AttributeValue>);
  for (let i = 0; i < items.length; i += 25) {
    let requests = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    for (let round = 0; requests.length > 0; round++) {
      if (round === 5)
        throw new Error(`restoring ${TABLE_FILE}: DynamoDB kept ${requests.length} items back`);
      const out = await target.clients.dynamodb.send(
        new BatchWriteItemCommand({ RequestItems: { [target.table]: requests } }),
      );
      requests = (out.UnprocessedItems?.[target.table] ?? []) as typeof requests;
    }
  }
  return items.length;
}

/** Saves every item of the ledger table to <dir>/ledger.jsonl (written aside, then renamed into place). */
export async function mirrorTable(target: SnapshotTarget): Promise<void> {
  const lines: string[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await target.clients.dynamodb.send(
      new ScanCommand({ TableName: target.table, ExclusiveStartKey: start }),
    );
    for (const item of page.Items ?? []) lines.push(JSON.stringify(item));
    start = page.LastEvaluatedKey;
  } while (start);
  await mkdir(target.dir, { recursive: true });
  const file = path.join(target.dir, TABLE_FILE);
  await writeFile(`${file}.tmp`, lines.length ? `${lines.join('\n')}\n` : '');
  await rename(`${file}.tmp`, file);
}

async function readQueueFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => (JSON.parse(line) as { body: string }).body);
}

/** Brings <dir>/s3 in line with the bucket: writes new and changed objects, removes deleted ones. */
export async function mirrorBucket(target: SnapshotTarget): Promise<void> {
  const { clients, bucket, dir } = target;
  const before = await readManifest(dir);
  const after: Manifest = {};
  const changed: string[] = [];
  let token: string | undefined;
  do {
    const page = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) {
      const key = object.Key!;
      const etag = object.ETag ?? '';
      after[key] = before[key]?.etag === etag ? before[key]! : { etag };
      if (before[key]?.etag !== etag) changed.push(key);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  await inBatches(changed, 16, async (key) => {
    const object = await clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const file = path.join(dir, 's3', keyToPath(key));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, await object.Body!.transformToByteArray());
    after[key] = {
      etag: after[key]!.etag,
      ...(object.ContentType ? { contentType: object.ContentType } : {}),
    };
  });
  for (const key of Object.keys(before)) {
    if (!(key in after)) await rm(path.join(dir, 's3', keyToPath(key)), { force: true });
  }
  await mkdir(dir, { recursive: true });
  // The manifest is written last and atomically enough for a dev tool: a crash before it means the next
  // mirror simply fetches the same objects again.
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(after));
}

/**
 * The records the worker left on the queue (deferred: invisible until their back-off ends), by SQS message id,
 * with the latest receipt handle. At shutdown they are made visible again, so drainQueues() can save them.
 */
export class RetainedRecords {
  readonly #records = new Map<string, string>();

  /** The poller's onBatch: remember what stayed on the queue, forget what was deleted. */
  track(report: BatchReport): void {
    for (const record of report.event.Records) {
      if (report.deleted.includes(record.messageId)) this.#records.delete(record.messageId);
      else this.#records.set(record.messageId, record.receiptHandle);
    }
  }

  async release(target: SnapshotTarget): Promise<void> {
    for (const receiptHandle of this.#records.values()) {
      try {
        await target.clients.sqs.send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: target.queues.main,
            ReceiptHandle: receiptHandle,
            VisibilityTimeout: 0,
          }),
        );
      } catch {
        // Moved to the DLQ or already gone: nothing to release.
      }
    }
    this.#records.clear();
  }
}

/**
 * Takes every message off both queues into <dir>/*.jsonl. Only at shutdown, after the poller stopped: the
 * messages are received (and deleted) for good, since this emulator is about to go away.
 */
export async function drainQueues(target: SnapshotTarget): Promise<number> {
  let total = 0;
  for (const [queue, file] of Object.entries(QUEUE_FILES) as Array<[keyof typeof QUEUE_FILES, string]>) {
    const url = target.queues[queue];
    const lines: string[] = [];
    const seen = new Set<string>();
    for (;;) {
      const result = await target.clients.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 600,
          WaitTimeSeconds: 0,
        }),
      );
      const received = (result.Messages ?? []).filter((m) => !seen.has(m.MessageId!));
      if (received.length === 0) break;
      for (const message of received) {
        seen.add(message.MessageId!);
        lines.push(JSON.stringify({ body: message.Body ?? '' }));
      }
      await target.clients.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: received.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
    await mkdir(target.dir, { recursive: true });
    if (lines.length > 0) await writeFile(path.join(target.dir, file), `${lines.join('\n')}\n`);
    total += lines.length;
  }
  return total;
}

async function inBatches<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}
