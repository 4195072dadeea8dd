// One delivery attempt of one message to its open recipients, through a session handed in.
import { type Envelope, type MessageBody, type SendResult, sendSplitting } from '../smtp/index.ts';
import { fromFailure, fromRecipientOutcome, type RecipientResult } from './outcome.ts';

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
 * others go into a further transaction of the same attempt (lib/smtp's sendSplitting); any other 452 is
 * deferred like any 4xx.
 */
export async function deliver(
  sender: SmtpSender,
  request: DeliveryRequest,
  now: () => number = Date.now,
): Promise<DeliveryReport> {
  const round = await sendSplitting(
    request.addresses,
    (to) => sender.send({ ...request.envelope, to }, request.createBody, request.tag),
    { now },
  );
  const results = new Map<string, RecipientResult>();
  for (const [address, outcome] of round.outcomes) results.set(address, fromRecipientOutcome(outcome));
  if (round.error !== undefined) {
    const failure = fromFailure(round.error);
    for (const address of round.unsent) results.set(address, failure);
  }
  // A recipient the server's result does not mention was never answered: defer it rather than lose it.
  for (const address of request.addresses) {
    if (!results.has(address))
      results.set(address, { state: 'deferred', error: 'no reply for this recipient' });
  }
  return { results, transactionMs: round.transactionMs };
}
