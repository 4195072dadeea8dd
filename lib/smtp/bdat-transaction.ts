// A BDAT transaction (RFC 3030, used with PIPELINING): MAIL, RCPT… and `BDAT n LAST` with the message in one
// write, without waiting for anything, so several transactions are in flight at once. A streamed body goes
// in chunks of BDAT_CHUNK octets, each announced by its own BDAT.
import { type Body, describe, finishRecord, payloadRecorder, streamBody } from './body.ts';
import { DataEncoding } from './data-encoder.ts';
import type { EnvelopeLines } from './envelope.ts';
import { everyRecipient, recipientOutcomes, settle } from './outcomes.ts';
import { broken, checkReset, ok, protocolError, type Session, stageOf, writeGroup } from './session.ts';
import type { Reply, SendResult } from './types.ts';
import type { Wire } from './wire.ts';

const EMPTY = Buffer.alloc(0);

/** BDAT chunk size for streamed bodies: big enough that replies are few, small enough to bound memory. */
const BDAT_CHUNK = 64 * 1024;

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
        if (r.code < 400 && !ok(r)) this.unexpected ??= r;
        else if (!ok(r)) this.refused ??= r;
        this.final = r;
      },
      () => {}, // the wire failed: `outcome` rejects with it
    );
    this.last = reply;
  }

  /** The reply that decides the message; rejects when the wire failed or a chunk got a non-2xx success. */
  async outcome(): Promise<Reply> {
    await this.last;
    if (this.unexpected)
      throw broken(this.wire, protocolError('bdat', this.unexpected, 'unexpected reply to BDAT'));
    return this.refused ?? this.final!;
  }
}

export async function bdatTransaction(
  session: Session,
  lines: EnvelopeLines,
  body: Body,
  tag: string | undefined,
  replay = false,
): Promise<SendResult> {
  const { wire, turn, options } = session;
  const { command: commandTimeout, dataEnd, data: dataTimeout } = options.timeouts;
  const carry = await turn.acquire(); // none in practice: only DATA transactions hand bytes on
  wire.tag = tag;
  let holding = true;
  // A BDAT LAST ends its transaction whatever the reply (RFC 3030 §2, like the end of DATA), so the next one
  // may follow while it is in flight without RSET. A server that keeps the MAIL state of a failed one
  // anyway answers our MAIL with 503: an in-memory message is then sent again after RSET (replay); a
  // stream can be read only once, so it gets the RSET up front.
  const behind = session.inFlight > 0;
  const reset = replay || session.needsReset || (behind && !('chunks' in body));
  session.needsReset = false;
  session.inFlight++;
  try {
    if (wire.failure) throw wire.failure;
    const commands = [...(reset ? ['RSET'] : []), lines.mail, ...lines.rcpts];
    const chunkReplies = new ChunkReplies(wire);
    let pending: Array<Promise<Reply>>;
    if ('chunks' in body) {
      const header = `BDAT ${body.length} LAST`;
      for (const command of commands) wire.note('C', command);
      wire.note('C', header);
      describe(session, body.chunks, body.octets, body.lines);
      const flowing = writeGroup(wire, carry, [`${commands.join('\r\n')}\r\n${header}\r\n`, ...body.chunks]);
      pending = commands.map((command) => wire.expect(stageOf(command), commandTimeout));
      chunkReplies.expect(dataEnd);
      if (!flowing) await wire.waitDrain('bdat', dataTimeout);
    } else {
      // The commands leave with the first chunk: a small streamed message is one write, like a prebuilt one.
      // The transcript follows the wire: each BDAT line, then what it carries (its lines with
      // transcriptData), and after the LAST one the summary of the whole message.
      pending = [];
      let first = true;
      const encoding = new DataEncoding({ dotStuff: false });
      const recorder = payloadRecorder(session);
      let held: Buffer[] = [];
      let heldBytes = 0;
      const sendChunk = async (last: boolean) => {
        const header = `BDAT ${heldBytes}${last ? ' LAST' : ''}`;
        const group = first ? `${commands.join('\r\n')}\r\n${header}\r\n` : `${header}\r\n`;
        if (first) for (const command of commands) wire.note('C', command);
        wire.note('C', header);
        if (recorder) for (const chunk of held) recorder.push(chunk);
        if (last) finishRecord(session, recorder, EMPTY, encoding);
        const flowing = writeGroup(wire, first ? carry : undefined, [group, ...held]);
        if (first)
          for (const command of commands) pending.push(wire.expect(stageOf(command), commandTimeout));
        first = false;
        chunkReplies.expect(last ? dataEnd : commandTimeout);
        held = [];
        heldBytes = 0;
        if (!flowing) await wire.waitDrain('bdat', dataTimeout);
      };
      await streamBody(session, body.source, encoding, 'bdat', async (chunk) => {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= BDAT_CHUNK) await sendChunk(false);
      });
      const end = encoding.finish();
      if (end.length > 0) {
        held.push(end);
        heldBytes += end.length;
      }
      await sendChunk(true);
    }
    holding = false;
    wire.tag = undefined;
    turn.release();

    if (reset) await checkReset(wire, pending.shift()!);
    const [mailPromise, ...rcptPromises] = pending;
    const mail = await mailPromise!;
    const rcptReplies = await Promise.all(rcptPromises);
    const data = await chunkReplies.outcome();
    if (!ok(mail)) {
      session.needsReset = true;
      if (mail.code === 503 && behind && !reset && 'chunks' in body) {
        wire.note('*', 'MAIL got 503 behind a transaction in flight: sending the message again after RSET');
        return await bdatTransaction(session, lines, body, tag, true);
      }
      return { mail, recipients: everyRecipient(lines.recipients, mail) };
    }
    const recipients = recipientOutcomes(lines.recipients, rcptReplies);
    if (!recipients.some((r) => r.status === 'accepted')) {
      session.needsReset = true;
      return { mail, recipients, data };
    }
    if (!ok(data)) session.needsReset = true;
    settle(recipients, data);
    return { mail, recipients, data };
  } finally {
    session.inFlight--;
    if (holding) {
      wire.tag = undefined;
      turn.release();
    }
  }
}
