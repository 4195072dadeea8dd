// Emulates the Lambda DynamoDB-stream event source against any DynamoDB Streams endpoint (moto, LocalStack,
// AWS): reads each shard of the ledger's stream in order, hands the records to the handler as a real
// DynamoDBStreamEvent, and on a partial batch response (ReportBatchItemFailures) reads again from the first
// failed record after a pause — as Lambda does with ParallelizationFactor 1, so a message's events stay in
// commit order and a failure repeats events (same ids) rather than skipping any.
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';

export interface StreamPollerOptions {
  streams: DynamoDBStreamsClient;
  streamArn: string;
  handler: (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse | undefined>;
  region?: string;
  /** Where a new reader starts: LATEST (what changes from now on; the dev stack's default, since a restored
   *  snapshot re-inserts every record) or TRIM_HORIZON (everything the stream still holds). */
  startAt?: 'LATEST' | 'TRIM_HORIZON';
  /** Pause between reads of a shard with nothing new. Default 250 ms. */
  idleMs?: number;
  /** Records per invocation (the event source's BatchSize). Default 100. */
  batchSize?: number;
  onError?: (error: unknown) => void;
}

export interface StreamPoller {
  /** Stops reading; resolves once the invocation in progress has returned. */
  stop(): Promise<void>;
  /** Resolves once every record written before the call has been handled (tests, and a clean stop). */
  drain(): Promise<void>;
}

const RETRY_PAUSE_MS = 1000;

export async function startStreamPoller(options: StreamPollerOptions): Promise<StreamPoller> {
  const { streams, streamArn } = options;
  const idleMs = options.idleMs ?? 250;
  const batchSize = options.batchSize ?? 100;
  const region = options.region ?? 'us-east-1';
  const onError = options.onError ?? ((error: unknown) => console.error('[stream-poller]', error));
  const described = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  const shards = (described.StreamDescription?.Shards ?? []).map((s) => s.ShardId!);
  let stopped = false;
  const idleWaiters: Array<() => void> = [];

  const iterator = async (shardId: string, after?: string) =>
    (
      await streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shardId,
          ...(after
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: after }
            : { ShardIteratorType: options.startAt ?? 'LATEST' }),
        }),
      )
    ).ShardIterator;

  const readShard = async (shardId: string) => {
    let position = await iterator(shardId);
    /** Read and not yet handled, in order. */
    let pending: StreamRecord[] = [];
    let lastRead: string | undefined;
    while (!stopped && position) {
      try {
        const out = await streams.send(new GetRecordsCommand({ ShardIterator: position, Limit: 1000 }));
        pending.push(...(out.Records ?? []));
        lastRead = pending.at(-1)?.dynamodb?.SequenceNumber ?? lastRead;
        position = out.NextShardIterator;
      } catch (error) {
        onError(error);
        await pause(RETRY_PAUSE_MS);
        // An iterator expires (after 15 minutes in AWS): a new one, after the last record read.
        position = await iterator(shardId, lastRead).catch(() => position);
        continue;
      }
      if (pending.length === 0) {
        for (const wake of idleWaiters.splice(0)) wake();
        await pause(idleMs);
        continue;
      }
      while (pending.length > 0 && !stopped) {
        const batch = pending.slice(0, batchSize);
        let failed: string | undefined;
        try {
          const event = { Records: batch.map((r) => toLambdaRecord(r, streamArn, region)) };
          failed = (await options.handler(event))?.batchItemFailures?.[0]?.itemIdentifier;
        } catch (error) {
          // A handler that throws fails the whole batch: Lambda retries all of it.
          onError(error);
          failed = batch[0]?.dynamodb?.SequenceNumber;
        }
        if (!failed) {
          pending = pending.slice(batch.length);
          continue;
        }
        // Again from the failed record: the ones before it are done (Lambda checkpoints before it).
        pending = pending.slice(
          Math.max(
            0,
            batch.findIndex((r) => r.dynamodb?.SequenceNumber === failed),
          ),
        );
        await pause(RETRY_PAUSE_MS);
      }
    }
  };

  const loops = shards.map((shardId) => readShard(shardId).catch(onError));
  return {
    async stop() {
      stopped = true;
      for (const wake of idleWaiters.splice(0)) wake();
      await Promise.all(loops);
    },
    drain: () =>
      new Promise<void>((resolve) => {
        // Twice idle: the read that saw nothing began after the call.
        let left = 2;
        const wait = () => idleWaiters.push(() => (--left === 0 || stopped ? resolve() : wait()));
        wait();
      }),
  };
}

export function toLambdaRecord(record: StreamRecord, streamArn: string, region: string): DynamoDBRecord {
  return {
    eventID: record.eventID,
    eventName: record.eventName as DynamoDBRecord['eventName'],
    eventVersion: record.eventVersion ?? '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: record.awsRegion ?? region,
    eventSourceARN: streamArn,
    dynamodb: {
      ...(record.dynamodb as DynamoDBRecord['dynamodb']),
      ApproximateCreationDateTime:
        record.dynamodb?.ApproximateCreationDateTime instanceof Date
          ? record.dynamodb.ApproximateCreationDateTime.getTime() / 1000
          : undefined,
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
