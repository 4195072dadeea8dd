// A DATA transaction, sequential (no PIPELINING: each command waits for its reply) or pipelined (RFC 2920:
// MAIL, every RCPT and DATA in one write; after the body, the end of data leaves together with the next
// queued transaction's commands, §3.1, so a message costs one round trip).
import { type Body, describe, finishRecord, streamBody } from './body.ts';
import { DataEncoding } from './data-encoder.ts';
import type { EnvelopeLines } from './envelope.ts';
import { everyRecipient, recipientOutcomes, settle } from './outcomes.ts';
import {
  broken,
  checkReset,
  ok,
  pipelineCommands,
  protocolError,
  type Session,
  stageOf,
  writeGroup,
} from './session.ts';
import type { Reply, SendResult } from './types.ts';

export async function dataTransaction(
  session: Session,
  lines: EnvelopeLines,
  body: Body,
  pipelined: boolean,
  tag: string | undefined,
): Promise<SendResult> {
  const { wire, turn, options } = session;
  const { command: commandTimeout, dataEnd } = options.timeouts;
  const carry = await turn.acquire();
  wire.tag = tag;
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
      return { mail, recipients: everyRecipient(lines.recipients, mail) };
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
      wire.tag = undefined;
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
    if (holding) {
      wire.tag = undefined;
      turn.release();
    }
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
