// A DATA transaction, sequential (no PIPELINING: each command waits for its reply) or pipelined (RFC 2920:
// MAIL, every RCPT and DATA in one write; the end of the message is carried into the next write, so it
// leaves with the next queued transaction's commands, §3.1, and a message costs one round trip).
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
  sendCommands,
  settle,
  type TransactionContext,
} from './pipeline.ts';
import { isIntermediate, isPositive } from './reply.ts';
import type { Reply, SendResult } from './types.ts';

export async function dataTransaction(
  context: TransactionContext,
  lines: EnvelopeLines,
  body: OutgoingBody,
  pipelined: boolean,
  tag: string | undefined,
): Promise<SendResult> {
  const { wire, options } = context;
  const endTurn = await wire.turn(tag);
  try {
    if (wire.failure) throw wire.failure;
    const reset = context.needsReset;
    context.needsReset = false;
    const commands = [...(reset ? ['RSET'] : []), lines.mail, ...lines.rcpts, 'DATA'];
    const replies = sendCommands(wire, commands, options.timeouts.command, pipelined);

    if (reset) await checkReset(wire, replies.next());
    const mail = await replies.next();
    if (!isPositive(mail)) {
      if (pipelined) await finishUnwanted(context, await replies.rest());
      return { mail, recipients: everyRecipient(lines.recipients, mail) };
    }
    const rcptReplies: Reply[] = [];
    for (let i = 0; i < lines.rcpts.length; i++) rcptReplies.push(await replies.next());
    const recipients = recipientOutcomes(lines.recipients, rcptReplies);
    const anyAccepted = recipients.some((r) => r.status === 'accepted');
    if (!pipelined && !anyAccepted) {
      context.needsReset = true;
      return { mail, recipients };
    }
    const data = await replies.next();
    if (data.code !== 354) {
      if (isPositive(data) || isIntermediate(data))
        throw broken(wire, protocolError('data', data, 'DATA answered without 354'));
      settle(recipients, data);
      context.needsReset = true;
      return { mail, recipients, data };
    }
    if (!anyAccepted) {
      await finishUnwanted(context, [data]);
      return { mail, recipients };
    }
    const dot = await sendMessage(context, body, pipelined ? endTurn : undefined);
    if (isIntermediate(dot)) throw broken(wire, protocolError('dot', dot, 'unexpected reply to end of data'));
    settle(recipients, dot);
    return { mail, recipients, data: dot };
  } finally {
    endTurn();
  }
}

/** The message after 354, written with backpressure. Its last group, which holds the end of data, is written
 *  at once, or — pipelined (`endTurn` given) — carried into the next write with the turn passed on at once.
 *  Resolves with the reply to the end of data. */
async function sendMessage(
  context: TransactionContext,
  body: OutgoingBody,
  endTurn: (() => void) | undefined,
): Promise<Reply> {
  const { wire, options } = context;
  const record = new BodyRecord(context);
  let end: Buffer[] = [];
  for await (const group of bodyGroups(wire, body)) {
    record.push(group.parts);
    if (group.last) end = group.parts;
    else if (!wire.write(...group.parts)) await wire.waitDrain('data', options.timeouts.data);
  }
  record.end(body);
  const dot = wire.expect('dot', options.timeouts.dataEnd);
  if (endTurn) {
    wire.carry(end);
    endTurn();
  } else {
    wire.write(...end);
  }
  return dot;
}

/** A server that said 354 although nothing is to be sent gets an empty message ended at once. */
async function finishUnwanted(context: TransactionContext, replies: Reply[]): Promise<void> {
  context.needsReset = true;
  if (replies[replies.length - 1]?.code !== 354) return;
  context.wire.note('C', '.');
  context.wire.write('.\r\n');
  await context.wire.expect('dot', context.options.timeouts.dataEnd);
}
