// What a transaction needs from its connection, and the small steps every transaction shape shares:
// writing a group of commands in one write, naming the stage of a command, checking an RSET.
import { formatReply, SmtpError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import type { WriteTurn } from './turn.ts';
import type { Extensions, Reply, SmtpStage } from './types.ts';
import type { Wire } from './wire.ts';

/** What a transaction needs from its connection. */
export interface Session {
  readonly wire: Wire;
  readonly extensions: Extensions;
  readonly options: ResolvedOptions;
  readonly turn: WriteTurn;
  /** TLS is on (implicit, or STARTTLS succeeded). */
  readonly secure: boolean;
  /** The previous transaction may have left MAIL state open: start the next one with RSET. */
  needsReset: boolean;
  /** BDAT transactions written whose replies have not all arrived. */
  inFlight: number;
}

export const ok = (reply: Reply) => reply.code >= 200 && reply.code < 300;

export function protocolError(stage: SmtpStage, reply: Reply, what: string): SmtpError {
  return new SmtpError('SMTP_PROTOCOL', `protocol error: ${what}: ${formatReply(reply)}`, { stage, reply });
}

/** Fails the wire with `error` (a broken session is never reused) and returns it for throwing. */
export function broken(wire: Wire, error: SmtpError): SmtpError {
  wire.fail(error);
  return error;
}

/** Writes `carry` (the previous message's end) and `parts` as one write; false means wait for drain. */
export function writeGroup(wire: Wire, carry: Buffer[] | undefined, parts: Array<Buffer | string>): boolean {
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

export function stageOf(command: string): SmtpStage {
  if (command.startsWith('MAIL')) return 'mail';
  if (command.startsWith('RCPT')) return 'rcpt';
  return command === 'RSET' ? 'rset' : 'data';
}

/** Sends the commands in one write (pipelined) and returns their reply promises, in order. */
export function pipelineCommands(
  wire: Wire,
  carry: Buffer[] | undefined,
  commands: string[],
  timeout: number,
) {
  for (const command of commands) wire.note('C', command);
  writeGroup(wire, carry, [`${commands.join('\r\n')}\r\n`]);
  return commands.map((command) => wire.expect(stageOf(command), timeout));
}

export async function checkReset(wire: Wire, reply: Promise<Reply>): Promise<void> {
  const rset = await reply;
  if (!ok(rset)) throw broken(wire, SmtpError.fromReply('rset', rset, 'RSET refused'));
}
