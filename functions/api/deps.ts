// What the API handler needs from the outside world, as the narrowest slice of each lib/aws adapter, so
// the handler core is built once from real adapters (index.ts) and can be exercised route by route.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { S3PayloadStore } from '../../lib/aws/payload-store.ts';
import type { SqsQueueProducer } from '../../lib/aws/queue-producer.ts';
import type { ApiConfig } from '../../lib/config.ts';
import type { IdempotencyStore } from '../../lib/delivery/idempotency.ts';
import type { StatusIndex, StatusStore, TranscriptStore } from '../../lib/delivery/ports.ts';
import type { SuppressionStore } from '../../lib/delivery/suppression.ts';

export interface ApiDeps {
  config: ApiConfig;
  status: StatusStore & StatusIndex;
  transcripts: Pick<TranscriptStore, 'part'>;
  idempotency: IdempotencyStore;
  suppressions: SuppressionStore;
  /** The one-click unsubscribe key; unset when not configured (requests with `unsubscribe` are refused). */
  unsubscribeKey?: () => Promise<string>;
  payloads: Pick<S3PayloadStore, 'put'>;
  queue: Pick<SqsQueueProducer, 'send' | 'sendBatch'>;
  logger: Logger;
  /** Injected for tests; the wall clock and newMessageId() otherwise. */
  now?: () => Date;
  newId?: () => string;
}
