// What `smtpq send` prints and the exit code it ends with (sysexits.h): the caller's shell branches on it.

import type { RecipientOutcome, Reply, RetryResult, SmtpError, Transcript } from '../../lib/smtp/index.ts';
import { safe, safeLines } from './terminal.ts';

export const EXIT = {
  /** Every recipient accepted. */
  ok: 0,
  /** EX_USAGE: bad flags or input; nothing was sent. */
  usage: 64,
  /** EX_UNAVAILABLE: every failure was permanent (5xx, or a permanent session error). */
  unavailable: 69,
  /** EX_TEMPFAIL: some recipient or the session failed transiently; trying later may work. */
  tempfail: 75,
} as const;

export function exitCodeOf(result: Pick<RetryResult, 'recipients' | 'error'>): number {
  // An argument the client refused (an address with CR/LF, …) is the caller's input, not the server's doing.
  if (result.error?.code === 'SMTP_INVALID_ARGUMENT') return EXIT.usage;
  const statuses = result.recipients.map((r) => r.status);
  if (statuses.length > 0 && statuses.every((s) => s === 'accepted')) return EXIT.ok;
  if (statuses.includes('deferred') || (statuses.length === 0 && result.error?.transient))
    return EXIT.tempfail;
  return EXIT.unavailable;
}

const replyText = (reply: Reply) => safe(`${reply.code} ${reply.lines.join(' / ')}`.trimEnd());

/** For a terminal: the server's words and the addresses with their control characters escaped. */
export function formatText(result: RetryResult, transcript: Transcript): string {
  const lines = [safeLines(transcript.toString().trimEnd()), ''];
  for (const outcome of result.recipients) {
    lines.push(`${safe(outcome.address)}: ${outcome.status} (${replyText(outcome.reply)})`);
  }
  if (result.error) lines.push(`error: ${safe(describeError(result.error))}`);
  lines.push(`attempts: ${result.attempts}`);
  return `${lines.join('\n')}\n`;
}

/** The one JSON object of --json. */
export function toJson(result: RetryResult, transcript: Transcript, exitCode: number): object {
  return {
    ok: exitCode === EXIT.ok,
    exitCode,
    attempts: result.attempts,
    recipients: result.recipients.map((r: RecipientOutcome) => ({
      address: r.address,
      status: r.status,
      reply: r.reply,
    })),
    ...(result.error ? { error: errorJson(result.error) } : {}),
    transcript: transcript.entries.map((e) => ({ at: e.at.toISOString(), kind: e.kind, text: e.text })),
  };
}

export function errorJson(error: SmtpError): object {
  return {
    code: error.code,
    stage: error.stage,
    transient: error.transient,
    message: error.message,
    ...(error.reply ? { reply: error.reply } : {}),
  };
}

const describeError = (error: SmtpError) =>
  `${error.code} at ${error.stage} (${error.transient ? 'transient' : 'permanent'}): ${error.message}`;
