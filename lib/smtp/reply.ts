// Incremental SMTP reply parser (RFC 5321 §4.2, enhanced codes RFC 3463): a pure function of the bytes
// pushed so far. Replies may be split anywhere or packed several to a chunk; anything malformed throws
// SMTP_PROTOCOL, and input can never grow without bound.
import { SmtpError } from './errors.ts';
import type { Reply, SmtpStage } from './types.ts';

/** RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets; we tolerate far more before calling it an attack. */
export const MAX_REPLY_LINE = 4096;
/** A multi-line reply with more lines than this is treated as a protocol violation (EHLO sends ~15). */
export const MAX_REPLY_LINES = 256;

const LF = 0x0a;
const CR = 0x0d;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

export class ReplyParser {
  /** Bytes of a line whose LF has not arrived yet. */
  private partial: Buffer | undefined;
  /** Lines of a multi-line reply whose last line has not arrived yet. */
  private lines: string[] = [];
  private code = 0;
  private failed: SmtpError | undefined;

  /** Octets held for a reply that is not complete yet (0 between replies). */
  get buffered(): number {
    return (this.partial?.length ?? 0) + (this.lines.length > 0 ? 1 : 0);
  }

  /** Parses every reply completed by `chunk`. `stage` only labels the error if the bytes are malformed. */
  push(chunk: Uint8Array, stage: SmtpStage = 'greeting'): Reply[] {
    if (this.failed) throw this.failed;
    let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.partial) {
      data = Buffer.concat([this.partial, data]);
      this.partial = undefined;
    }
    const replies: Reply[] = [];
    let start = 0;
    for (;;) {
      const lf = data.indexOf(LF, start);
      if (lf < 0) break;
      const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
      if (end - start > MAX_REPLY_LINE) this.fail(stage, `reply line longer than ${MAX_REPLY_LINE} octets`);
      const reply = this.line(data, start, end, stage);
      if (reply) replies.push(reply);
      start = lf + 1;
    }
    if (start < data.length) {
      if (data.length - start > MAX_REPLY_LINE)
        this.fail(stage, `reply line longer than ${MAX_REPLY_LINE} octets`);
      this.partial = data.subarray(start);
    }
    return replies;
  }

  private line(data: Buffer, start: number, end: number, stage: SmtpStage): Reply | undefined {
    const length = end - start;
    const d0 = data[start]! - 0x30;
    const d1 = data[start + 1]! - 0x30;
    const d2 = data[start + 2]! - 0x30;
    // Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 §4.2).
    if (length < 3 || !(d0 >= 2 && d0 <= 5) || !(d1 >= 0 && d1 <= 5) || !(d2 >= 0 && d2 <= 9)) {
      this.fail(
        stage,
        `malformed reply line ${JSON.stringify(data.toString('latin1', start, Math.min(end, start + 40)))}`,
      );
    }
    const separator = length > 3 ? data[start + 3] : 0x20;
    if (separator !== 0x20 && separator !== 0x2d)
      this.fail(stage, 'reply code not followed by space or hyphen');
    const code = d0 * 100 + d1 * 10 + d2;
    if (this.lines.length > 0 && code !== this.code) {
      this.fail(stage, `multi-line reply changed its code from ${this.code} to ${code}`);
    }
    this.code = code;
    this.lines.push(length > 4 ? data.toString('utf8', start + 4, end) : '');
    if (separator === 0x2d) {
      if (this.lines.length >= MAX_REPLY_LINES)
        this.fail(stage, `reply has more than ${MAX_REPLY_LINES} lines`);
      return undefined;
    }
    const lines = this.lines;
    this.lines = [];
    const match = ENHANCED.exec(lines[0]!);
    // An enhanced code counts only when its class agrees with the reply code (RFC 3463 §2, RFC 2034 §4).
    if (match && Number(match[1]) === d0)
      return { code, enhanced: `${match[1]}.${match[2]}.${match[3]}`, lines };
    return { code, lines };
  }

  private fail(stage: SmtpStage, message: string): never {
    this.partial = undefined;
    this.lines = [];
    this.failed = new SmtpError('SMTP_PROTOCOL', `protocol error: ${message}`, { stage });
    throw this.failed;
  }
}

/** The reply as the server sent it, one string per line (`250-…`, `250 …`), for transcripts. */
export function replyLines(reply: Reply): string[] {
  const last = reply.lines.length - 1;
  return reply.lines.map((text, i) => `${reply.code}${i === last ? ' ' : '-'}${text}`.trimEnd());
}

/** The reply's class: 2 positive, 3 intermediate, 4 transient negative, 5 permanent negative. */
export function replyClass(reply: Reply): 2 | 3 | 4 | 5 {
  return Math.floor(reply.code / 100) as 2 | 3 | 4 | 5;
}
