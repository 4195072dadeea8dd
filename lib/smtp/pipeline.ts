// The steps every transaction shape takes, on the wire: commands sent pipelined (one write) or one at a time,
// replies turned into per-recipient outcomes, the body read in groups, and the transcript's record of the
// body. DATA (data-transaction.ts) and BDAT (bdat-transaction.ts) are built from these.
import { groups, type OutgoingBody } from './body.ts';
import { SmtpError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import { formatReply, isPositive, statusOf } from './reply.ts';
import type { RecipientOutcome, Reply, SmtpStage } from './types.ts';
import type { Wire } from './wire.ts';

/** What a transaction needs from its connection, and the MAIL state the transactions share. */
export interface TransactionContext {
  readonly wire: Wire;
  readonly options: ResolvedOptions;
  /** The previous transaction may have left MAIL state open: start the next one with RSET. */
  needsReset: boolean;
  /** BDAT transactions written whose replies have not all arrived. */
  inFlight: number;
}

/** A streamed body is read in groups of this many octets: one write (DATA) or one BDAT chunk each. Big
 *  enough that writes and BDAT replies are few, small enough to bound memory. */
const GROUP_OCTETS = 64 * 1024;

export function protocolError(stage: SmtpStage, reply: Reply, what: string): SmtpError {
  return new SmtpError('SMTP_PROTOCOL', `protocol error: ${what}: ${formatReply(reply)}`, { stage, reply });
}

/** Fails the wire with `error` (a broken connection is never reused) and returns it for throwing. */
export function broken(wire: Wire, error: SmtpError): SmtpError {
  wire.fail(error);
  return error;
}

export function stageOf(command: string): SmtpStage {
  if (command.startsWith('MAIL')) return 'mail';
  if (command.startsWith('RCPT')) return 'rcpt';
  return command === 'RSET' ? 'rset' : 'data';
}

/** The commands' replies, in order. Pipelined, every command leaves now in one write and `next` awaits the
 *  next reply; else `next` sends the next command and awaits its reply (RFC 2920 §3.1). */
export function sendCommands(wire: Wire, commands: readonly string[], timeout: number, pipelined: boolean) {
  let sent: Array<Promise<Reply>> | undefined;
  if (pipelined) {
    for (const command of commands) wire.note('C', command);
    wire.write(`${commands.join('\r\n')}\r\n`);
    sent = commands.map((command) => wire.expect(stageOf(command), timeout));
  }
  let i = 0;
  return {
    next(): Promise<Reply> {
      const n = i++;
      return sent ? sent[n]! : wire.command(commands[n]!, stageOf(commands[n]!), timeout);
    },
    /** The replies not awaited yet (pipelined only). */
    rest: (): Promise<Reply[]> => Promise.all(sent ? sent.slice(i) : []),
  };
}

/** Awaits the reply to RSET; a refusal breaks the connection (its MAIL state is unknown). */
export async function checkReset(wire: Wire, reply: Promise<Reply>): Promise<void> {
  const rset = await reply;
  if (!isPositive(rset)) throw broken(wire, SmtpError.fromReply('rset', rset, 'RSET refused'));
}

/** The body in groups (see GROUP_OCTETS; an in-memory body is one group); a stream that fails breaks the
 *  connection (SMTP_BODY): the message cannot be ended without delivering a truncated one. */
export async function* bodyGroups(wire: Wire, body: OutgoingBody) {
  try {
    yield* groups(body.chunks(), body.length === undefined ? GROUP_OCTETS : Number.POSITIVE_INFINITY);
  } catch (error) {
    if (error instanceof SmtpError && error.code === 'SMTP_BODY') wire.fail(error);
    throw error;
  }
}

export function recipientOutcomes(recipients: readonly string[], replies: Reply[]): RecipientOutcome[] {
  return recipients.map((address, i) => {
    const reply = replies[i]!;
    return { address, status: statusOf(reply), reply };
  });
}

/** MAIL refused: every recipient takes its reply. */
export function everyRecipient(recipients: readonly string[], reply: Reply): RecipientOutcome[] {
  return recipients.map((address) => ({ address, status: statusOf(reply), reply }));
}

/** Recipients RCPT accepted take the status of the reply to the message data. */
export function settle(outcomes: RecipientOutcome[], final: Reply): void {
  for (const outcome of outcomes) {
    if (outcome.status === 'accepted') {
      outcome.status = statusOf(final);
      outcome.reply = final;
    }
  }
}

/** `<message: 1532 octets, 31 lines>`: what the transcript keeps of the data unless asked for the payload. */
export function describeMessage(octets: number, lines: number): string {
  return `<message: ${octets} octets, ${lines} lines>`;
}

/** Records a message payload line by line (transcriptData), holding at most one partial line between chunks. */
export class PayloadRecorder {
  private carry = '';
  constructor(private readonly add: (kind: 'C', text: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.carry + chunk.toString('utf8');
    const lines = text.split('\r\n');
    this.carry = lines.pop() ?? '';
    for (const line of lines) this.add('C', line);
  }

  end(): void {
    if (this.carry) this.add('C', this.carry);
    this.carry = '';
  }
}

/** The transcript's record of a body, in wire order: its lines as they are written (transcriptData), or
 *  its summary once its end is known. */
export class BodyRecord {
  private readonly payload: PayloadRecorder | undefined;

  constructor(private readonly context: TransactionContext) {
    const { wire, options } = context;
    this.payload =
      options.transcriptData && wire.transcript
        ? new PayloadRecorder((kind, text) => wire.note(kind, text))
        : undefined;
  }

  push(parts: readonly Buffer[]): void {
    if (this.payload) for (const part of parts) this.payload.push(part);
  }

  end(body: OutgoingBody): void {
    if (this.payload) this.payload.end();
    else if (this.context.wire.transcript)
      this.context.wire.note('C', describeMessage(body.octets, body.lines));
  }
}
