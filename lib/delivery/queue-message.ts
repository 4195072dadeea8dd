// The body of one SQS message. Small requests travel inline; a request too big for SQS is stored in S3
// (claim check) and the queue carries its key.
export type QueueMessage = { v: 1; id: string; request: unknown } | { v: 1; id: string; payloadKey: string };
