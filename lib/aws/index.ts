// lib/aws: the adapters between lib/delivery's ports and AWS (the only place that imports @aws-sdk).
export { type AwsClients, createAwsClients } from './clients.ts';
export {
  DynamoIdempotencyStore,
  IDEMPOTENCY_TTL_MS,
  type IdempotencyRecord,
} from './idempotency-store.ts';
export { InvalidKeyError, isValidId } from './keys.ts';
export { DynamoLedger, InvalidCursorError, LISTED_STATES } from './ledger-store.ts';
export { ensureLedgerTable, ledgerTableDefinition } from './ledger-table.ts';
export { S3PayloadStore } from './payload-store.ts';
export {
  MAX_SQS_BATCH_BYTES,
  type ProducerOptions,
  type SendResult,
  SqsQueueProducer,
  SqsTimeoutError,
} from './queue-producer.ts';
export { CorruptObjectError } from './s3-objects.ts';
export { SECRET_TTL_MS, SecretFormatError, type SmtpCredentials, SmtpSecretReader } from './smtp-secret.ts';
export { S3TranscriptStore } from './transcript-store.ts';
