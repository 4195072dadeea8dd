// One mail transaction (MAIL, RCPT…, DATA or BDAT) on a ready session, in one of three shapes:
//  - sequential: each command waits for its reply (no PIPELINING);
//  - pipelined DATA (RFC 2920): MAIL, every RCPT and DATA in one write; after the body, the end of data goes
//    out together with the next queued transaction's commands (§3.1), so a message costs one round trip;
//  - BDAT (RFC 3030 with PIPELINING): MAIL, RCPT… and `BDAT n LAST` with the message in one write, without
//    waiting for anything, so several transactions are in flight at once.
// Recipients get an outcome each; a reply that ends the session (421, timeout, loss) rejects instead.
import { Readable } from 'node:stream';
import { DataEncoding } from './data-encoder.ts';
import { type EnvelopeLines, envelopeLines } from './envelope.ts';
import { formatReply, SmtpError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import { describeMessage, PayloadRecorder } from './transcript.ts';
import type { WriteTurn } from './turn.ts';
import type {
  Envelope,
  Extensions,
  MessageBody,
  RecipientOutcome,
  RecipientStatus,
  Reply,
  SendResult,
  SmtpStage,
} from './types.ts';
import type { Wire } from './wire.ts';

/** What a transaction needs from its connection. */
export interface Session {
  readonly wire: Wire;
  readonly extensions: Extensions;
  readonly options: ResolvedOptions;
  readonly turn: WriteTurn;
  /** The previous transaction may have left MAIL state open: start the next one with RSET. */
  needsReset: boolean;
  /** BDAT transactions written whose replies have not all arrived. */
  inFlight: number;
}

type Source = AsyncIterable<Uint8Array | string>;
/** An in-memory body is encoded up front: its size is known (SIZE=, BDAT n) and it leaves in one write. */
type Body = { chunks: Buffer[]; length: number; octets: number; lines: number } | { source: Source };

/** BDAT chunk size for streamed bodies: big enough that replies are few, small enough to bound memory. */
const BDAT_CHUNK = 64 * 1024;

export function statusOf(reply: Reply): RecipientStatus {
  if (reply.code >= 200 && reply.code < 300) return 'accepted';
  return reply.code >= 400 && reply.code < 500 ? 'deferred' : 'failed';
}

const ok = (reply: Reply) => reply.code >= 200 && reply.code < 300;

function protocolError(stage: SmtpStage, reply: Reply, what: string): SmtpError {
  return new SmtpError('SMTP_PROTOCOL', `protocol error: ${what}: ${formatReply(reply)}`, { stage, reply });
}

/** Fails the wire with `error` (a broken session is never reused) and returns it for throwing. */
function broken(wire: Wire, error: SmtpError): SmtpError {
  wire.fail(error);
  return error;
}

function isSource(body: unknown): body is Source {
  return (
    body instanceof Readable || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)
  );
}

/** A stream body belongs to the transaction: read to the end, or destroyed when it is not needed (MAIL or
 *  every RCPT refused, invalid envelope, broken session), so that a file or socket behind it is released. */
export async function transaction(
  session: Session,
  envelope: Envelope,
  body: MessageBody,
): Promise<SendResult> {
  try {
    return await runTransaction(session, envelope, body);
  } finally {
    if (body instanceof Readable && !body.readableEnded && !body.destroyed) body.destroy();
  }
}

async function runTransaction(session: Session, envelope: Envelope, body: MessageBody): Promise<SendResult> {
  const { wire, extensions: ext, options } = session;
  if (wire.failure) throw wire.failure;
  const pipelined = options.pipelining && ext.pipelining;
  // BDAT only with PIPELINING too: without it every chunk would cost a round trip, which DATA does not.
  const chunked = pipelined && options.chunking && ext.chunking;

  let prepared: Body;
  let eightBit = false;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const encoding = new DataEncoding({ dotStuff: !chunked });
    const chunks = [
      encoding.encode(typeof body === 'string' ? Buffer.from(body, 'utf8') : body),
      encoding.finish(),
    ];
    const length = chunks[0]!.length + chunks[1]!.length;
    prepared = { chunks, length, octets: encoding.octets, lines: encoding.lines };
    eightBit = encoding.eightBit;
  } else if (isSource(body)) {
    prepared = { source: body };
  } else {
    throw new SmtpError('SMTP_INVALID_ARGUMENT', 'body must be a string, bytes or a stream', {
      stage: 'data',
    });
  }
  const size = 'chunks' in prepared ? prepared.octets : undefined;
  const lines = envelopeLines(envelope, ext, { size, eightBit });
  return chunked
    ? bdatTransaction(session, lines, prepared)
    : dataTransaction(session, lines, prepared, pipelined);
}

/** Writes `carry` (the previous message's end) and `parts` as one write; false means wait for drain. */
function writeGroup(wire: Wire, carry: Buffer[] | undefined, parts: Array<Buffer | string>): boolean {
  const socket = wire.socket;
  socket.cork();
  let flowing = true;
  try {
    if (carry) for (const chunk of carry) flowing = wire.write(chunk);
    for (const part of parts) flowing = wire.write(part);
  } finally {
    socket.uncork();
  }
  return flowing;
}

function stageOf(command: string): SmtpStage {
  if (command.startsWith('MAIL')) return 'mail';
  if (command.startsWith('RCPT')) return 'rcpt';
  return command === 'RSET' ? 'rset' : 'data';
}

/** Sends the commands in one write (pipelined) and returns their reply promises, in order. */
function pipelineCommands(wire: Wire, carry: Buffer[] | undefined, commands: string[], timeout: number) {
  for (const command of commands) wire.note('C', command);
  writeGroup(wire, carry, [`${commands.join('\r\n')}\r\n`]);
  return commands.map((command) => wire.expect(stageOf(command), timeout));
}

async function checkReset(wire: Wire, reply: Promise<Reply>): Promise<void> {
  const rset = await reply;
  if (!ok(rset)) throw broken(wire, SmtpError.fromReply('rset', rset, 'RSET refused'));
}

function recipientOutcomes(recipients: string[], replies: Reply[]): RecipientOutcome[] {
  return recipients.map((address, i) => {
    const reply = replies[i]!;
    return { address, status: statusOf(reply), reply };
  });
}

/** Recipients RCPT accepted take the status of the reply to the message data. */
function settle(outcomes: RecipientOutcome[], final: Reply): void {
  for (const outcome of outcomes) {
    if (outcome.status === 'accepted') {
      outcome.status = statusOf(final);
      outcome.reply = final;
    }
  }
}

async function dataTransaction(
  session: Session,
  lines: EnvelopeLines,
  body: Body,
  pipelined: boolean,
): Promise<SendResult> {
  const { wire, turn, options } = session;
  const { command: commandTimeout, dataEnd } = options.timeouts;
  const carry = await turn.acquire();
  let holding = true;
  try {
    if (wire.failure) throw wire.failure;
    const reset = session.needsReset;
    session.needsReset = false;
    const commands = [...(reset ? ['RSET'] : []), lines.mail, ...lines.rcpts, 'DATA'];
    const pending = pipelined ? pipelineCommands(wire, carry, commands, commandTimeout) : undefined;
    let next = 0;
    // The reply to the next command: already on its way when pipelined, else sent now and awaited.
    const ask = (): Promise<Reply> => {
      const i = next++;
      if (pending) return pending[i]!;
      const command = commands[i]!;
      return wire.command(command, stageOf(command), commandTimeout);
    };

    if (reset) await checkReset(wire, ask());
    const mail = await ask();
    if (!ok(mail)) {
      if (pending) await finishUnwanted(session, await Promise.all(pending.slice(next)));
      return {
        mail,
        recipients: lines.recipients.map((address) => ({ address, status: statusOf(mail), reply: mail })),
      };
    }
    const rcptReplies: Reply[] = [];
    for (let i = 0; i < lines.rcpts.length; i++) rcptReplies.push(await ask());
    const recipients = recipientOutcomes(lines.recipients, rcptReplies);
    const anyAccepted = recipients.some((r) => r.status === 'accepted');
    if (!pending && !anyAccepted) {
      session.needsReset = true;
      return { mail, recipients };
    }
    const data = await ask();
    if (data.code !== 354) {
      if (data.code < 400) throw broken(wire, protocolError('data', data, 'DATA answered without 354'));
      settle(recipients, data);
      session.needsReset = true;
      return { mail, recipients, data };
    }
    if (!anyAccepted) {
      await finishUnwanted(session, [data]);
      return { mail, recipients };
    }

    let end: Buffer[];
    if ('chunks' in body) {
      end = body.chunks;
      describe(session, body.chunks, body.octets, body.lines);
    } else {
      const encoding = new DataEncoding();
      const recorder = await streamBody(session, body.source, encoding, 'data');
      end = [encoding.finish()];
      finishRecord(session, recorder, end[0]!, encoding);
    }
    const dotReply = wire.expect('dot', dataEnd);
    if (pipelined) {
      holding = false;
      if (!turn.release(end)) writeGroup(wire, undefined, end);
    } else {
      writeGroup(wire, undefined, end);
    }
    const dot = await dotReply;
    if (dot.code < 400 && !ok(dot))
      throw broken(wire, protocolError('dot', dot, 'unexpected reply to end of data'));
    settle(recipients, dot);
    return { mail, recipients, data: dot };
  } finally {
    if (holding) turn.release();
  }
}

/** A server that said 354 although nothing is to be sent gets an empty message ended at once. */
async function finishUnwanted(session: Session, replies: Reply[]): Promise<void> {
  session.needsReset = true;
  if (replies[replies.length - 1]?.code !== 354) return;
  session.wire.note('C', '.');
  session.wire.write('.\r\n');
  await session.wire.expect('dot', session.options.timeouts.dataEnd);
}

/** The transcript's view of an in-memory body: its summary, or its lines with transcriptData. */
function describe(session: Session, chunks: Buffer[], octets: number, lines: number): void {
  const { wire, options } = session;
  if (!wire.transcript) return;
  if (!options.transcriptData) {
    wire.note('C', describeMessage(octets, lines));
    return;
  }
  const recorder = new PayloadRecorder(wire.transcript);
  for (const chunk of chunks) recorder.push(chunk);
  recorder.end();
}

/** The same for a streamed body, once its end is known. */
function finishRecord(
  session: Session,
  recorder: PayloadRecorder | undefined,
  end: Buffer,
  encoding: DataEncoding,
) {
  if (recorder) {
    recorder.push(end);
    recorder.end();
  } else {
    session.wire.note('C', describeMessage(encoding.octets, encoding.lines));
  }
}

/** Streams a body through the encoder with backpressure; a source error breaks the session (the DATA
 *  cannot be abandoned without delivering a truncated message). */
async function streamBody(
  session: Session,
  source: Source,
  encoding: DataEncoding,
  stage: SmtpStage,
  onChunk?: (chunk: Buffer) => Promise<void>,
): Promise<PayloadRecorder | undefined> {
  const { wire, options } = session;
  const recorder =
    options.transcriptData && wire.transcript ? new PayloadRecorder(wire.transcript) : undefined;
  // Corked, the many small chunks a MIME composer emits leave as one write (up to the high-water mark).
  const socket = wire.socket;
  if (!onChunk) socket.cork();
  try {
    for await (const chunk of source) {
      const out = encoding.encode(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      if (out.length === 0) continue;
      recorder?.push(out);
      if (onChunk) await onChunk(out);
      else if (!wire.write(out)) {
        socket.uncork();
        await wire.waitDrain(stage, options.timeouts.data);
        socket.cork();
      }
    }
  } catch (error) {
    if (error instanceof SmtpError) throw error;
    throw broken(
      wire,
      new SmtpError('SMTP_BODY', `reading the message body failed: ${(error as Error).message}`, {
        stage,
        cause: error,
        transient: true,
      }),
    );
  } finally {
    if (!onChunk) socket.uncork();
  }
  return recorder;
}

async function bdatTransaction(
  session: Session,
  lines: EnvelopeLines,
  body: Body,
  replay = false,
): Promise<SendResult> {
  const { wire, turn, options } = session;
  const { command: commandTimeout, dataEnd, data: dataTimeout } = options.timeouts;
  const carry = await turn.acquire(); // none in practice: only DATA transactions hand bytes on
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
    const chunkReplies: Array<Promise<Reply>> = [];
    let pending: Array<Promise<Reply>>;
    if ('chunks' in body) {
      const header = `BDAT ${body.length} LAST`;
      for (const command of commands) wire.note('C', command);
      wire.note('C', header);
      describe(session, body.chunks, body.octets, body.lines);
      const flowing = writeGroup(wire, carry, [`${commands.join('\r\n')}\r\n${header}\r\n`, ...body.chunks]);
      pending = commands.map((command) => wire.expect(stageOf(command), commandTimeout));
      chunkReplies.push(wire.expect('bdat', dataEnd));
      if (!flowing) await wire.waitDrain('bdat', dataTimeout);
    } else {
      // The commands leave with the first chunk: a small streamed message is one write, like a prebuilt one.
      pending = [];
      let first = true;
      const encoding = new DataEncoding({ dotStuff: false });
      let held: Buffer[] = [];
      let heldBytes = 0;
      const sendChunk = async (last: boolean) => {
        const header = `BDAT ${heldBytes}${last ? ' LAST' : ''}`;
        const group = first ? `${commands.join('\r\n')}\r\n${header}\r\n` : `${header}\r\n`;
        if (first) for (const command of commands) wire.note('C', command);
        wire.note('C', header);
        const flowing = writeGroup(wire, first ? carry : undefined, [group, ...held]);
        if (first)
          for (const command of commands) pending.push(wire.expect(stageOf(command), commandTimeout));
        first = false;
        chunkReplies.push(wire.expect('bdat', last ? dataEnd : commandTimeout));
        held = [];
        heldBytes = 0;
        if (!flowing) await wire.waitDrain('bdat', dataTimeout);
      };
      const recorder = await streamBody(session, body.source, encoding, 'bdat', async (chunk) => {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= BDAT_CHUNK) await sendChunk(false);
      });
      const end = encoding.finish();
      finishRecord(session, recorder, end, encoding);
      if (end.length > 0) {
        held.push(end);
        heldBytes += end.length;
      }
      await sendChunk(true);
    }
    holding = false;
    turn.release();

    if (reset) await checkReset(wire, pending.shift()!);
    const [mailPromise, ...rcptPromises] = pending;
    const mail = await mailPromise!;
    const rcptReplies = await Promise.all(rcptPromises);
    const chunks = await Promise.all(chunkReplies);
    for (const reply of chunks) {
      if (reply.code < 400 && !ok(reply))
        throw broken(wire, protocolError('bdat', reply, 'unexpected reply to BDAT'));
    }
    // The first refused chunk decides (RFC 3030 §2: the server discards the rest of a failed transaction).
    const data = chunks.find((reply) => !ok(reply)) ?? chunks[chunks.length - 1]!;
    if (!ok(mail)) {
      session.needsReset = true;
      if (mail.code === 503 && behind && !reset && 'chunks' in body) {
        wire.note('*', 'MAIL got 503 behind a transaction in flight: sending the message again after RSET');
        return await bdatTransaction(session, lines, body, true);
      }
      return {
        mail,
        recipients: lines.recipients.map((address) => ({ address, status: statusOf(mail), reply: mail })),
      };
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
    if (holding) turn.release();
  }
}
