// The body of one SQS message: the message's id, its initial status record, and the request — inline when it
// fits an SQS message, else stored in S3 (claim check) with only its key here. The API enqueues it *before*
// it writes the status record: a worker that finds no record (the API died in between, or is simply slower)
// writes it from the queue message, so a message on the queue always gets its ledger entry and nothing queued
// is ever left unsent.
import type { StatusRecord } from './ports.ts';

export type QueueMessage =
  | { v: 1; id: string; record: StatusRecord; request: unknown }
  | { v: 1; id: string; record: StatusRecord; payloadKey: string };
