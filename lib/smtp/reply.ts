// What a server reply means, as pure functions of its code (RFC 5321 §4.2.1; lettre's `Severity`), and how it
// reads in an error message and in the transcript. Every reply-class check in smtpq goes through these.
import type { RecipientStatus, Reply } from './types.ts';

/** The reply's class: 2 positive, 3 intermediate, 4 transient negative, 5 permanent negative. */
export function replyClass(reply: Reply): 2 | 3 | 4 | 5 {
  return Math.floor(reply.code / 100) as 2 | 3 | 4 | 5;
}

/** 2xx: the command succeeded. */
export const isPositive = (reply: Reply): boolean => replyClass(reply) === 2;
/** 3xx: go on (354 after DATA, 334 during AUTH). */
export const isIntermediate = (reply: Reply): boolean => replyClass(reply) === 3;
/** 4xx: not now; the same command may succeed later. */
export const isTransient = (reply: Reply): boolean => replyClass(reply) === 4;
/** 5xx: never; sending the same again will not help. */
export const isPermanent = (reply: Reply): boolean => replyClass(reply) === 5;

/** A recipient's status from the reply that decided it: 2xx accepted, 4xx deferred, anything else failed. */
export function statusOf(reply: Reply): RecipientStatus {
  if (isPositive(reply)) return 'accepted';
  return isTransient(reply) ? 'deferred' : 'failed';
}

/** `550 5.1.1 No such user` (first line only; enough for an error message). */
export function formatReply(reply: Reply): string {
  return `${reply.code} ${reply.lines[0] ?? ''}`.trimEnd();
}

/** The reply as the server sent it, one string per line (`250-…`, `250 …`), for transcripts. */
export function replyLines(reply: Reply): string[] {
  const last = reply.lines.length - 1;
  return reply.lines.map((text, i) => `${reply.code}${i === last ? ' ' : '-'}${text}`.trimEnd());
}
