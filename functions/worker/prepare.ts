// The send request → the message the attempt sends. Message-ID and Date come from the stored request (fixed
// at submit), else from the ledger, so every attempt sends the identical message. A request with
// `unsubscribe` is composed once per recipient, each with its own one-click link (RFC 8058).
import type { Preparation } from '../../lib/delivery/batch.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { unsubscribeToken, unsubscribeUrl } from '../../lib/delivery/unsubscribe.ts';
import { composeMessage, fromSendRequest, MessageError, type SendRequest } from '../../lib/message/index.ts';

/** What the unsubscribe links are made of: the deployment's key and the API's public base URL. */
export interface UnsubscribeLinks {
  key: string;
  baseUrl: string;
}

export function prepareMessage(
  request: SendRequest,
  record: StatusRecord,
  links?: UnsubscribeLinks,
): Preparation {
  try {
    const input = {
      ...fromSendRequest(request, { date: new Date(record.createdAt) }),
      messageId: request.messageId ?? record.messageId,
    };
    const composed = composeMessage(input);
    const { from, smtpUtf8, eightBit } = composed.envelope;
    const envelope = { from, smtpUtf8, eightBit };
    if (!request.unsubscribe)
      return { ok: true, message: { envelope, createBody: () => composed.createStream() } };
    // Checked before anything is sent: a key that cannot be read is a retry, not a verdict on the message.
    if (!links) throw new Error('unsubscribe links requested, and no unsubscribe key is configured');
    const { mailto } = request.unsubscribe;
    const forRecipient = (address: string) => {
      const url = unsubscribeUrl(links.baseUrl, unsubscribeToken(links.key, record.id, address));
      const own = composeMessage({ ...input, listUnsubscribe: { url, ...(mailto ? { mailto } : {}) } });
      return () => own.createStream();
    };
    return { ok: true, message: { envelope, createBody: () => composed.createStream(), forRecipient } };
  } catch (error) {
    // The request passed validation but cannot be composed: as undeliverable as a malformed record.
    if (error instanceof MessageError) return { ok: false, reason: error.message };
    throw error;
  }
}
