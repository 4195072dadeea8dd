// The send request → the message the attempt sends. Message-ID and Date come from the stored request (fixed
// at submit), else from the ledger, so every attempt sends the identical message.
import type { Preparation } from '../../lib/delivery/batch.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { composeMessage, fromSendRequest, MessageError, type SendRequest } from '../../lib/message/index.ts';

export function prepareMessage(request: SendRequest, record: StatusRecord): Preparation {
  try {
    const input = fromSendRequest(request, { date: new Date(record.createdAt) });
    const composed = composeMessage({ ...input, messageId: request.messageId ?? record.messageId });
    const { from, smtpUtf8, eightBit } = composed.envelope;
    return {
      ok: true,
      message: { envelope: { from, smtpUtf8, eightBit }, createBody: () => composed.createStream() },
    };
  } catch (error) {
    // The request passed validation but cannot be composed: as undeliverable as a malformed record.
    if (error instanceof MessageError) return { ok: false, reason: error.message };
    throw error;
  }
}
