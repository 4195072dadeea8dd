// One delivery attempt of one message to its open recipients, through a session handed in.
import { type Envelope, furtherTransaction, type MessageBody, type SendResult } from '../smtp/index.ts';
import { fromRecipientOutcome, fromSmtpFailure, type RecipientResult, toSmtpFailure } from './outcome.ts';

/** What deliver needs from an SMTP connection: one transaction (MAIL, RCPT…, DATA). */
export interface SmtpSender {
  /** `createBody` is called once per try, so a transaction retried on a fresh connection gets a fresh stream.
   *  `tag` marks the transaction's transcript lines (the message and attempt they belong to). */
  send(envelope: Envelope, createBody: () => MessageBody, tag: string): Promise<SendResult>;
}

export interface DeliveryRequest {
  /** The envelope without recipients; deliver fills `to` with the addresses still open. */
  envelope: Omit<Envelope, 'to'>;
  addresses: readonly string[];
  createBody: () => MessageBody;
  tag: string;
}

export interface DeliveryReport {
  results: Map<string, RecipientResult>;
  /** Wall-clock milliseconds of each transaction, for the latency metric. */
  transactionMs: number[];
}

/**
 * Sends to every address once. Recipients refused with 452 ("too many recipients") while the server settled
 * others go into a further transaction of the same attempt (furtherTransaction, RFC 5321 §4.5.3.1.10); any
 * other 452 is deferred like any 4xx.
 */
export async function deliver(
  sender: SmtpSender,
  request: DeliveryRequest,
  now: () => number = Date.now,
): Promise<DeliveryReport> {
  const results = new Map<string, RecipientResult>();
  const transactionMs: number[] = [];
  let remaining = [...new Set(request.addresses)];
  while (remaining.length > 0) {
    const started = now();
    let sent: SendResult;
    try {
      sent = await sender.send({ ...request.envelope, to: remaining }, request.createBody, request.tag);
    } catch (thrown) {
      transactionMs.push(now() - started);
      const failure = fromSmtpFailure(toSmtpFailure(thrown));
      for (const address of remaining) results.set(address, failure);
      break;
    }
    transactionMs.push(now() - started);
    const further = new Set(furtherTransaction(sent));
    for (const outcome of sent.recipients) {
      if (!further.has(outcome.address)) results.set(outcome.address, fromRecipientOutcome(outcome));
    }
    // A recipient the server's result does not mention was never answered: defer it rather than lose it.
    const answered = new Set(sent.recipients.map((o) => o.address));
    for (const address of remaining) {
      if (!answered.has(address))
        results.set(address, { state: 'deferred', error: 'no reply for this recipient' });
    }
    remaining = [...further];
  }
  return { results, transactionMs };
}
