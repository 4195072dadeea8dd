// The send request → the message the attempt sends. Message-ID and Date come from the stored request (fixed
// at submit), else from the ledger, so every attempt sends the identical message. A request with
// `unsubscribe` is composed once per recipient, each with its own one-click link (RFC 8058). A From domain
// with a DKIM key is signed (lib/message/dkim.ts: two passes over the stream, the signature kept for retries).
import type { Preparation } from '../../lib/delivery/batch.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { unsubscribeToken, unsubscribeUrl } from '../../lib/delivery/unsubscribe.ts';
import { type DkimKey, keyFor, signedBody } from '../../lib/message/dkim.ts';
import {
  type ComposedMessage,
  composeMessage,
  fromSendRequest,
  MessageError,
  type SendRequest,
} from '../../lib/message/index.ts';
import type { Envelope, MessageBody } from '../../lib/smtp/types.ts';

/** What the unsubscribe links are made of: the deployment's key and the API's public base URL. */
export interface UnsubscribeLinks {
  key: string;
  baseUrl: string;
}

/** The DKIM keys of this invocation: none configured (undefined), or configured but unreadable now. */
export type Signing = { keys: readonly DkimKey[] } | 'unavailable' | undefined;

export function prepareMessage(
  request: SendRequest,
  record: StatusRecord,
  links?: UnsubscribeLinks,
  signing?: Signing,
): Preparation {
  try {
    const input = {
      ...fromSendRequest(request, { date: new Date(record.createdAt) }),
      messageId: request.messageId ?? record.messageId,
    };
    // Never sent unsigned for want of keys that are configured: a retry, not a verdict on the message.
    if (signing === 'unavailable') throw new Error('the DKIM keys could not be read (DKIM_SECRET_ARN)');
    const composed = composeMessage(input);
    const { from, smtpUtf8, eightBit } = composed.envelope;
    const envelope = {
      from,
      smtpUtf8,
      eightBit,
      ...(request.dsn ? { dsn: request.dsn as Envelope['dsn'] } : {}),
      ...(request.requireTls ? { requireTls: true } : {}),
    };
    const key = signing ? keyFor(from, signing.keys) : undefined;
    const bodyOf = (message: ComposedMessage): (() => MessageBody) =>
      key ? signedBody(() => message.createStream(), key) : () => message.createStream();
    if (!request.unsubscribe) return { ok: true, message: { envelope, createBody: bodyOf(composed) } };
    // Checked before anything is sent: a key that cannot be read is a retry, not a verdict on the message.
    if (!links) throw new Error('unsubscribe links requested, and no unsubscribe key is configured');
    const { mailto } = request.unsubscribe;
    const forRecipient = (address: string) => {
      const url = unsubscribeUrl(links.baseUrl, unsubscribeToken(links.key, record.id, address));
      return bodyOf(composeMessage({ ...input, listUnsubscribe: { url, ...(mailto ? { mailto } : {}) } }));
    };
    return { ok: true, message: { envelope, createBody: bodyOf(composed), forRecipient } };
  } catch (error) {
    // The request passed validation but cannot be composed: as undeliverable as a malformed record.
    if (error instanceof MessageError) return { ok: false, reason: error.message };
    throw error;
  }
}
