// A BDAT transaction (RFC 3030, used with PIPELINING): MAIL, RCPT… and the first `BDAT n` with its chunk in
// one write, without waiting for anything, so several transactions are in flight at once. An in-memory
// message is one `BDAT n LAST`; a streamed one goes in groups (pipeline.ts), each announced by its own BDAT.
import type { OutgoingBody } from './body.ts';
import type { EnvelopeLines } from './envelope.ts';
import {
  BodyRecord,
  bodyGroups,
  broken,
  checkReset,
  everyRecipient,
  protocolError,
  recipientOutcomes,
  settle,
  stageOf,
  type TransactionContext,
} from './pipeline.ts';
import { isIntermediate, isPositive } from './reply.ts';
import type { Reply, SendResult } from './types.ts';
import type { Wire } from './wire.ts';

/** The replies to one message's BDAT commands, folded as they arrive: a long streamed message has one per
 *  chunk, and keeping them all would make memory grow with the message. Replies arrive in order, so once the
 *  last one is in, every earlier one has been folded. */
class ChunkReplies {
  private last: Promise<Reply> | undefined;
  /** The first refused chunk decides (RFC 3030 §2: the server discards the rest of a failed transaction). */
  private refused: Reply | undefined;
  private final: Reply | undefined;
  private unexpected: Reply | undefined;

  constructor(private readonly wire: Wire) {}

  expect(timeout: number): void {
    const reply = this.wire.expect('bdat', timeout);
    reply.then(
      (r) => {
        if (isIntermediate(r)) this.unexpected ??= r;
        else if (!isPositive(r)) this.refused ??= r;
        this.final = r;
      },
      () => {}, // the wire failed: `outcome` rejects with it
    );
    this.last = reply;
  }

  /** The reply that decides the message; rejects when the wire failed or a chunk got a 3xx. */
  async outcome(): Promise<Reply> {
    await this.last;
    if (this.unexpected)
      throw broken(this.wire, protocolError('bdat', this.unexpected, 'unexpected reply to BDAT'));
    return this.refused ?? this.final!;
  }
}

export async function bdatTransaction(
  context: TransactionContext,
  lines: EnvelopeLines,
  body: OutgoingBody,
  tag: string | undefined,
  replay = false,
): Promise<SendResult> {
  const { wire } = context;
  const endTurn = await wire.turn(tag);
  // A BDAT LAST ends its transaction whatever the reply (RFC 3030 §2, like the end of DATA), so the next one
  // may follow while it is in flight without RSET. A server that keeps the MAIL state of a failed one
  // anyway answers our MAIL with 503: an in-memory message is then sent again after RSET (replay); a
  // stream can be read only once, so it gets the RSET up front.
  const behind = context.inFlight > 0;
  const reset = replay || context.needsReset || (behind && body.length === undefined);
  context.needsReset = false;
  context.inFlight++;
  try {
    if (wire.failure) throw wire.failure;
    const commands = [...(reset ? ['RSET'] : []), lines.mail, ...lines.rcpts];
    const { pending, chunks } = await sendChunks(context, commands, body);
    endTurn();

    if (reset) await checkReset(wire, pending.shift()!);
    const [mailReply, ...rcptPending] = pending;
    const mail = await mailReply!;
    const rcptReplies = await Promise.all(rcptPending);
    const data = await chunks.outcome();
    if (!isPositive(mail)) {
      context.needsReset = true;
      if (mail.code === 503 && behind && !reset && body.length !== undefined) {
        wire.note('*', 'MAIL got 503 behind a transaction in flight: sending the message again after RSET');
        return await bdatTransaction(context, lines, body, tag, true);
      }
      return { mail, recipients: everyRecipient(lines.recipients, mail) };
    }
    const recipients = recipientOutcomes(lines.recipients, rcptReplies);
    if (!recipients.some((r) => r.status === 'accepted')) {
      context.needsReset = true;
      return { mail, recipients, data };
    }
    if (!isPositive(data)) context.needsReset = true;
    settle(recipients, data);
    return { mail, recipients, data };
  } finally {
    context.inFlight--;
    endTurn();
  }
}

/** Writes the commands with the first chunk, then each chunk after its BDAT command, waiting for no reply.
 *  The transcript follows the wire: each BDAT line, then what it carries (its lines with transcriptData),
 *  and after the LAST one the summary of the whole message. */
async function sendChunks(context: TransactionContext, commands: readonly string[], body: OutgoingBody) {
  const { wire, options } = context;
  const { command: commandTimeout, data: dataTimeout, dataEnd } = options.timeouts;
  const chunks = new ChunkReplies(wire);
  const record = new BodyRecord(context);
  let pending: Array<Promise<Reply>> | undefined;
  for await (const group of bodyGroups(wire, body)) {
    const header = `BDAT ${group.octets}${group.last ? ' LAST' : ''}`;
    const head = pending ? '' : `${commands.join('\r\n')}\r\n`;
    if (!pending) for (const command of commands) wire.note('C', command);
    wire.note('C', header);
    record.push(group.parts);
    if (group.last) record.end(body);
    const flowing = wire.write(`${head}${header}\r\n`, ...group.parts);
    pending ??= commands.map((command) => wire.expect(stageOf(command), commandTimeout));
    chunks.expect(group.last ? dataEnd : commandTimeout);
    if (!flowing) await wire.waitDrain('bdat', dataTimeout);
  }
  return { pending: pending!, chunks };
}
