// The queue message for one accepted request: the request inline when it fits an SQS message, else stored
// in S3 with only its key on the queue (claim check).
import { toSqsBody } from '../../lib/aws/sqs-body.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { QueueMessage } from '../../lib/delivery/queue-message.ts';
import type { ApiDeps } from './deps.ts';

/**
 * SQS takes messages of up to 1 MiB since August 2025 (256 KiB before); moto 5.2.5, the pinned emulator,
 * enforces the same 1 MiB, so one limit works in both. 64 KiB are kept free as a margin (message
 * attributes count against the limit too). A queue created with the old 256 KiB MaximumMessageSize must be
 * raised to 1048576 for this to hold (infra/template.yaml sets it explicitly).
 */
export const SQS_INLINE_LIMIT_BYTES = 1024 * 1024 - 64 * 1024;

export async function toQueueMessage(
  id: string,
  record: StatusRecord,
  request: unknown,
  payloads: ApiDeps['payloads'],
): Promise<QueueMessage> {
  const inline: QueueMessage = { v: 1, id, record, request };
  // Measured as the producer will send it: its escapes of characters SQS refuses make the text longer.
  if (Buffer.byteLength(toSqsBody(inline), 'utf8') <= SQS_INLINE_LIMIT_BYTES) return inline;
  return { v: 1, id, record, payloadKey: await payloads.put(id, request) };
}
