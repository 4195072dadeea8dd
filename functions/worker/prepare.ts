// The send request → the message the attempt sends. Message-ID and Date come from the stored request (fixed
// at submit), else from the ledger, so every attempt sends the identical message.
import type { PreparedMessage } from '../../lib/delivery/attempt.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { composeMessage, fromSendRequest, type SendRequest } from '../../lib/message/index.ts';

export function prepareMessage(request: SendRequest, record: StatusRecord): PreparedMessage {
  const input = fromSendRequest(request, { date: new Date(record.createdAt) });
  const composed = composeMessage({ ...input, messageId: request.messageId ?? record.messageId });
  const { from, smtpUtf8, eightBit } = composed.envelope;
  return { envelope: { from, smtpUtf8, eightBit }, createBody: () => composed.createStream() };
}
