// One mail transaction on a ready session: the body is prepared, the envelope checked, then the shape is
// chosen — BDAT when the server offers CHUNKING and PIPELINING, else DATA, pipelined when it can be.
// Recipients get an outcome each; a failure that ends the session (421, timeout, loss) rejects instead.
import { Readable } from 'node:stream';
import { bdatTransaction } from './bdat-transaction.ts';
import { prepareBody } from './body.ts';
import { dataTransaction } from './data-transaction.ts';
import { envelopeLines } from './envelope.ts';
import type { Session } from './session.ts';
import type { Envelope, MessageBody, SendOptions, SendResult } from './types.ts';

/** A stream body belongs to the transaction: read to the end, or destroyed when it is not needed (MAIL or
 *  every RCPT refused, invalid envelope, broken session), so that a file or socket behind it is released. */
export async function transaction(
  session: Session,
  envelope: Envelope,
  body: MessageBody,
  options: SendOptions = {},
): Promise<SendResult> {
  try {
    return await runTransaction(session, envelope, body, options.tag);
  } finally {
    if (body instanceof Readable && !body.readableEnded && !body.destroyed) body.destroy();
  }
}

async function runTransaction(
  session: Session,
  envelope: Envelope,
  body: MessageBody,
  tag: string | undefined,
): Promise<SendResult> {
  const { wire, extensions: ext, options } = session;
  if (wire.failure) throw wire.failure;
  const pipelined = options.pipelining && ext.pipelining;
  // BDAT only with PIPELINING too: without it every chunk would cost a round trip, which DATA does not.
  const chunked = pipelined && options.chunking && ext.chunking;
  const prepared = prepareBody(body, !chunked);
  const size = 'chunks' in prepared.body ? prepared.body.octets : undefined;
  const link = { tls: session.secure, verified: options.rejectUnauthorized };
  const lines = envelopeLines(envelope, ext, { size, eightBit: prepared.eightBit }, link);
  for (const note of lines.notes) wire.transcript?.add('*', note, tag);
  return chunked
    ? bdatTransaction(session, lines, prepared.body, tag)
    : dataTransaction(session, lines, prepared.body, pipelined, tag);
}
