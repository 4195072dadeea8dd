// An accepted request gets its id, its Message-ID and Date fixed once, and its initial status record.
// Storing Message-ID and Date with the request makes every retry compose the identical message.
import type { RecipientRecord, StatusRecord } from '../../lib/delivery/ports.ts';
import type { SendRequest } from '../../lib/message/index.ts';

export interface Accepted {
  id: string;
  /** The request as it goes on the queue. */
  stored: SendRequest;
  record: StatusRecord;
}

export interface AcceptOptions {
  messageIdDomain: string;
  idempotencyKey?: string;
  requestFingerprint?: string;
}

export function acceptRequest(request: SendRequest, id: string, now: Date, options: AcceptOptions): Accepted {
  const at = now.toISOString();
  // A caller's own Message-ID and Date are kept (validated by lib/message); otherwise they are fixed here.
  const stored: SendRequest = {
    ...request,
    messageId: request.messageId ?? `<${id}@${options.messageIdDomain}>`,
    date: request.date ?? at,
  };
  const recipients: RecipientRecord[] = (['to', 'cc', 'bcc'] as const).flatMap((kind) =>
    request[kind].map((mailbox) => ({
      address: mailbox.address,
      kind,
      state: 'queued' as const,
      updatedAt: at,
    })),
  );
  const record: StatusRecord = {
    id,
    state: 'queued',
    createdAt: at,
    updatedAt: at,
    messageId: stored.messageId!,
    ...(request.subject !== undefined ? { subject: request.subject } : {}),
    from: request.from.address,
    recipients,
    attempts: 0,
    transcripts: [],
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    ...(options.requestFingerprint !== undefined ? { requestFingerprint: options.requestFingerprint } : {}),
    ...(Object.keys(request.tags).length > 0 ? { tags: request.tags } : {}),
  };
  return { id, stored, record };
}
